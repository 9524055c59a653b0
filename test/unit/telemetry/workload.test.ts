import fc from 'fast-check';
import t from 'tap';
import { localWorkload, workloadOfPod } from '../../../src/telemetry/workload.ts';

// The workload name told from a pod's name, as Kubernetes controllers name their pods.

const SAFE = 'bcdfghjklmnpqrstvwxz2456789';
const safe = (min: number, max: number) => fc.string({ unit: fc.constantFrom(...SAFE), minLength: min, maxLength: max });
/** A DNS-label-like owner name; vowels make it unlike a generated suffix. */
const owner = fc.stringMatching(/^[a-z][a-z0-9-]{0,30}[a-z0-9]$/);

t.test("a Deployment's pod (owner-<template hash>-<5>) gives the Deployment", async () => {
  fc.assert(fc.property(owner, safe(6, 10), safe(5, 5), (name, hash, suffix) => workloadOfPod(`${name}-${hash}-${suffix}`) === name));
});

t.test("a DaemonSet's, Job's or bare ReplicaSet's pod (owner-<5>) gives its owner", async () => {
  fc.assert(fc.property(owner.filter((n) => !/-[bcdfghjklmnpqrstvwxz2456789]{6,10}$/.test(n)), safe(5, 5), (name, suffix) => workloadOfPod(`${name}-${suffix}`) === name));
});

t.test("a StatefulSet's pod (owner-<ordinal>) gives the StatefulSet", async () => {
  fc.assert(fc.property(owner, fc.nat(9999), (name, ordinal) => workloadOfPod(`${name}-${ordinal}`) === name));
});

t.test('examples, and names that are no generated ones', async (t) => {
  t.equal(workloadOfPod('reviews-v1-545db77b95-v4x6b'), 'reviews-v1');
  t.equal(workloadOfPod('web-0'), 'web');
  t.equal(workloadOfPod('fluentd-x7k2p'), 'fluentd');
  t.equal(workloadOfPod('my-cache'), 'my-cache', 'a vowel: no generated suffix');
  t.equal(workloadOfPod('standalone'), 'standalone');
  t.equal(workloadOfPod(''), '');
});

t.test('the local workload: configured values first, then the pod name and the SPIFFE ID', async (t) => {
  const id = 'spiffe://cluster.local/ns/shop/sa/cart';
  t.same(localWorkload({ name: '', namespace: '', app: 'cart', version: 'v1', pod: 'cart-7d4b9c8f6d-x2x9q' }, id), {
    metadata: { name: 'cart', namespace: 'shop', app: 'cart', version: 'v1' },
    principal: id,
  });
  t.same(localWorkload({ name: 'basket', namespace: 'store', app: '', version: '', pod: 'cart-7d4b9c8f6d-x2x9q' }, id).metadata, { name: 'basket', namespace: 'store', app: '', version: '' });
  t.same(localWorkload({ name: '', namespace: '', app: '', version: '', pod: '' }, undefined), { metadata: { name: '', namespace: '', app: '', version: '' }, principal: '' });
});

t.test("a name that is the pod's own (what meshlet inject sets when the owner is unknown) is derived too", async (t) => {
  const pod = 'cart-7d4b9c8f6d-x2x9q';
  t.equal(localWorkload({ name: pod, namespace: 'shop', app: '', version: '', pod }, undefined).metadata.name, 'cart');
});
