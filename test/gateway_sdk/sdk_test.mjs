// The reference gateway as OpenAI's customers call it: through the official
// `openai` Node package, its baseURL pointed at the gateway. Every endpoint
// of the OpenAI-compatible API (examples/gateway/README.md) and every error class the SDK raises for it.
//
// Run by test/gateway_test.py, which makes the accounts and keys below and
// starts the gateway. Environment: OPENAI_SDK_DIR (a folder where
// `npm install openai` was run: the package is never part of the repo),
// GATEWAY_SDK_URL (the gateway's base URL, .../v1), GATEWAY_NOBODY_URL (a
// gateway whose role lacks billing_app). Prints "ok"/"FAILED" per check; the
// exit status is the number of failures.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.env.OPENAI_SDK_DIR, 'package.json'));
const OpenAI = require('openai');
// Debian 12's own Node (18) has no global File, which the SDK's uploads need
globalThis.File ??= (await import('node:buffer')).File;
const { toFile } = OpenAI;
const baseURL = process.env.GATEWAY_SDK_URL;

// maxRetries 0: a 402 or a 409 must surface at once, and no check may pass
// because a retry papered over a first answer
const client = (apiKey, url = baseURL) => new OpenAI({ apiKey, baseURL: url, maxRetries: 0 });
const sdk = client('sk_sdk');

let failed = 0;
let passed = 0;
async function check(what, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok: SDK ${what}`);
  } catch (e) {
    failed++;
    console.log(`FAILED: SDK ${what}\n  got: ${e.stack || e}`);
  }
}

// the error an SDK call raises, or a failure when it raises none
async function raised(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail('the call succeeded');
}

async function available(c = sdk) {
  return (await c.get('/balance')).available_micros;
}

async function finished(video, c = sdk) {
  for (let i = 0; i < 300 && ['queued', 'in_progress'].includes(video.status); i++) {
    await new Promise((r) => setTimeout(r, 100));
    video = await c.videos.retrieve(video.id);
  }
  return video;
}

const funds = await available();
let spent = 0;
const image = { model: 'img', prompt: 'a lighthouse at dawn', n: 2, size: '1024x1536' };

// --- models
await check('models.list: OpenAI model objects with billing prices', async () => {
  const ids = [];
  for await (const model of sdk.models.list()) {
    assert.equal(model.object, 'model');
    assert.equal(typeof model.created, 'number');
    assert.equal(model.pricing.currency, 'USD');
    assert.ok(model.pricing.components.length > 0);
    ids.push(model.id);
  }
  assert.deepEqual(ids, ['edit', 'img', 'vid']);
});
await check('models.retrieve: one model with its price', async () => {
  const model = await sdk.models.retrieve('img');
  assert.equal(model.id, 'img');
  assert.equal(model.owned_by, 'acme');
  assert.deepEqual(model.pricing.components.map((c) => c.unit_price_micros), [60000]);
});
await check('models.retrieve of an unknown model: NotFoundError 404', async () => {
  const e = await raised(sdk.models.retrieve('nope'));
  assert.ok(e instanceof OpenAI.NotFoundError, e);
  assert.equal(e.status, 404);
});

// --- images.generate
await check('images.generate ?dryRun=true (query option): the estimate, nothing charged', async () => {
  const estimate = await sdk.images.generate(image, { query: { dryRun: true } });
  assert.equal(estimate.estimated, true);
  assert.equal(estimate.total_cost_micros, 240000);
  assert.equal(await available(), funds - spent);
});
let first;
await check('images.generate: the images, metadata.cost and the routing keys', async () => {
  const response = await sdk.images.generate(image, { headers: { 'Idempotency-Key': 'sdk-img-1' } }).asResponse();
  const text = await response.text();
  assert.match(text, /"cost": 0\.24,/, 'the exact decimal as billing wrote it');
  first = JSON.parse(text);
  assert.equal(typeof first.created, 'number');
  assert.deepEqual(first.data.map((i) => [i.width, i.height]), [[1024, 1536], [1024, 1536]]);
  assert.ok(first.data.every((i) => typeof i.url === 'string'));
  const md = first.metadata;
  assert.equal(md.cost_micros, 240000);
  assert.equal(md.cost_estimate, undefined);
  assert.equal(md.status, 'completed');
  assert.deepEqual([md.provider, md.provider_name, md.executed_model], ['acme', 'Acme Imaging', 'img-1.1']);
  assert.equal(md.upstream_id, `up_img_${md.request_id}`);
  spent += 240000;
  assert.equal(await available(), funds - spent);
});
await check('images.generate with the same Idempotency-Key: the same request, charged once', async () => {
  const again = await sdk.images.generate(image, { headers: { 'Idempotency-Key': 'sdk-img-1' } });
  assert.deepEqual(again.metadata, first.metadata);
  assert.equal(await available(), funds - spent);
});
await check('images.generate, the same key with other params: ConflictError 409, not retried', async () => {
  const e = await raised(sdk.images.generate({ ...image, n: 3 }, { headers: { 'Idempotency-Key': 'sdk-img-1' } }));
  assert.ok(e instanceof OpenAI.ConflictError, e);
  assert.equal(e.code, 'conflict');
  assert.equal(e.headers.get('x-should-retry'), 'false');
});
await check('images.generate of an unknown model: NotFoundError 404 not_found', async () => {
  const e = await raised(sdk.images.generate({ model: 'nope', prompt: 'x' }));
  assert.ok(e instanceof OpenAI.NotFoundError, e);
  assert.equal(e.code, 'not_found');
  assert.equal(e.type, 'invalid_request_error');
});
await check('images.generate with a malformed size: BadRequestError 400 invalid_request', async () => {
  const e = await raised(sdk.images.generate({ model: 'img', prompt: 'x', size: 'huge' }));
  assert.ok(e instanceof OpenAI.BadRequestError, e);
  assert.equal(e.code, 'invalid_request');
  assert.ok(e.error.detail || e.message);
});
await check('an unknown API key: AuthenticationError 401', async () => {
  const e = await raised(client('sk_nope').images.generate(image));
  assert.ok(e instanceof OpenAI.AuthenticationError, e);
  assert.equal(e.code, 'unauthorized');
});
await check('a gateway whose role lacks billing_app: PermissionDeniedError 403', async () => {
  const e = await raised(client('sk_alice', process.env.GATEWAY_NOBODY_URL).models.list());
  assert.ok(e instanceof OpenAI.PermissionDeniedError, e);
  assert.equal(e.code, 'permission_denied');
});

// --- images.edit: multipart, priced by its number of input images
const png = async (name) => toFile(Buffer.from(`\x89PNG\r\n\x1a\n${name}`, 'binary'), name, { type: 'image/png' });
const edit = async () => ({ model: 'edit', prompt: 'brighter', n: 1, size: '1024x1024',
                            image: [await png('a.png'), await png('b.png')] });
await check('images.edit ?dryRun=true: input_images is the number of images', async () => {
  const estimate = await sdk.images.edit(await edit(), { query: { dryRun: true } });
  assert.equal(estimate.estimated, true);
  assert.equal(estimate.total_cost_micros, 60000);
  assert.deepEqual(estimate.components.map((c) => [c.metric, c.quantity]), [['image', 1], ['input_image', 2]]);
});
await check('images.edit with two images: one image, metadata.cost 0.06', async () => {
  const edited = await sdk.images.edit(await edit());
  assert.equal(edited.data.length, 1);
  assert.equal(edited.metadata.cost, 0.06);
  spent += 60000;
  assert.equal(await available(), funds - spent);
});
await check('images.edit with one image (not an array)', async () => {
  const edited = await sdk.images.edit({ ...(await edit()), image: await png('c.png') });
  assert.equal(edited.metadata.cost_micros, 50000);
  spent += 50000;
});

// --- videos: create (multipart, seconds and size), retrieve, list, content, delete
const clip = { model: 'vid', prompt: 'waves', seconds: '4', size: '1280x720' };
await check('videos.create ?dryRun=true: seconds and size priced as duration_seconds and resolution', async () => {
  const estimate = await sdk.videos.create({ ...clip, size: '1920x1080' }, { query: { dryRun: true } });
  assert.equal(estimate.estimated, true);
  assert.equal(estimate.total_cost_micros, 200000);       // 4 s of 1080p at 0.05
  assert.equal(await available(), funds - spent);
});
const videos = [];
await check('videos.create: the video object, queued, metadata.cost_estimate held', async () => {
  for (let i = 0; i < 3; i++) {
    const video = await sdk.videos.create(clip);
    assert.equal(video.object, 'video');
    assert.equal(video.status, 'queued');
    assert.deepEqual([video.model, video.seconds, video.size, video.progress], ['vid', '4', '1280x720', 0]);
    assert.equal(video.metadata.cost_estimate, 0.12);
    assert.equal(video.metadata.cost, undefined);
    videos.push(video);
  }
  assert.equal(await available(), funds - spent - 3 * 120000);
});
await check('videos.list: newest first, paged with limit and after', async () => {
  const page = await sdk.videos.list({ limit: 2 });
  assert.deepEqual(page.data.map((v) => v.id), [videos[2].id, videos[1].id]);
  assert.equal(page.has_more, true);
  const all = [];
  for await (const video of sdk.videos.list({ limit: 2 })) all.push(video.id);
  assert.deepEqual(all, videos.map((v) => v.id).reverse());
});
await check('videos.downloadContent of an unfinished video: NotFoundError 404', async () => {
  const e = await raised(sdk.videos.downloadContent(videos[0].id));
  assert.ok(e instanceof OpenAI.NotFoundError, e);
});
await check('videos.delete of a running video: video.deleted, cancelled, charged nothing', async () => {
  const deleted = await sdk.videos.delete(videos[2].id);
  assert.deepEqual([deleted.id, deleted.object, deleted.deleted], [videos[2].id, 'video.deleted', true]);
  assert.equal(deleted.metadata.cost, 0);
  const e = await raised(sdk.videos.retrieve(videos[2].id));
  assert.ok(e instanceof OpenAI.NotFoundError, e);
});
await check('videos.retrieve until finished: cost_estimate becomes cost', async () => {
  for (const video of videos.slice(0, 2)) {
    const done = await finished(video);
    assert.equal(done.status, 'completed');
    assert.equal(done.progress, 100);
    assert.equal(typeof done.completed_at, 'number');
    assert.equal(done.metadata.cost_estimate, undefined);
    assert.equal(done.metadata.cost, 0.12);
    spent += done.metadata.cost_micros;
  }
  assert.equal(await available(), funds - spent);
});
await check('videos.downloadContent of a completed video: its bytes', async () => {
  const response = await sdk.videos.downloadContent(videos[0].id);
  assert.equal(response.headers.get('content-type'), 'video/mp4');
  assert.ok(Buffer.from(await response.arrayBuffer()).includes('ftyp'));
});
await check('videos.delete of a completed video: deleted, its cost kept', async () => {
  const deleted = await sdk.videos.delete(videos[1].id);
  assert.equal(deleted.deleted, true);
  assert.equal(deleted.metadata.cost_micros, 120000);
  const listed = [];
  for await (const video of sdk.videos.list()) listed.push(video.id);
  assert.deepEqual(listed, [videos[0].id]);
  assert.equal(await available(), funds - spent);
});
await check('videos.create with a size that is not WxH: BadRequestError 400, param size', async () => {
  const e = await raised(sdk.videos.create({ ...clip, size: 'big' }));
  assert.ok(e instanceof OpenAI.BadRequestError, e);
  assert.equal(e.param, 'size');
});
await check('videos.retrieve of an unknown video: NotFoundError 404', async () => {
  const e = await raised(sdk.videos.retrieve('vid_999999'));
  assert.ok(e instanceof OpenAI.NotFoundError, e);
});

// --- 402: every refusal of billing, as APIError with status 402 and billing's code
await check('402 insufficient_balance with billing detail and hint', async () => {
  const e = await raised(client('sk_sdk_poor').images.generate({ model: 'img', prompt: 'x' }));
  assert.ok(e instanceof OpenAI.APIError, e);
  assert.equal(e.status, 402);
  assert.equal(e.code, 'insufficient_balance');
  assert.equal(e.type, 'billing_error');
  assert.equal(e.error.detail, 'Request needs 0.06 USD; 0.05 USD is available.');
  assert.equal(e.error.hint, 'Add funds, enable auto top-up, or switch to postpaid billing.');
});
await check('402 insufficient_balance for a video', async () => {
  const e = await raised(client('sk_sdk_poor').videos.create(clip));
  assert.equal(e.status, 402);
  assert.equal(e.code, 'insufficient_balance');
});
await check('402 credit_limit_exceeded (postpaid)', async () => {
  const post = client('sk_sdk_post');
  await post.images.generate({ model: 'img', prompt: 'x' });
  const e = await raised(post.images.generate({ model: 'img', prompt: 'x' }));
  assert.equal(e.status, 402);
  assert.equal(e.code, 'credit_limit_exceeded');
});
await check('402 spend_limit_reached (the key\'s daily limit)', async () => {
  const limited = client('sk_sdk_limited');
  await limited.images.generate({ model: 'img', prompt: 'x' });
  await limited.images.generate({ model: 'img', prompt: 'x' });
  const e = await raised(limited.images.generate({ model: 'img', prompt: 'x' }));
  assert.equal(e.status, 402);
  assert.equal(e.code, 'spend_limit_reached');
  assert.match(e.error.detail, /daily limit of 0\.15 USD/);
});

await check('402 payment_overdue (an invoice unpaid past its due date)', async () => {
  const overdue = client('sk_sdk_overdue');
  const e = await raised(overdue.images.generate({ model: 'img', prompt: 'x' }));
  assert.ok(e instanceof OpenAI.APIError, e);
  assert.equal(e.status, 402);
  assert.equal(e.code, 'payment_overdue');
  assert.equal(e.type, 'billing_error');
  const invoice = await overdue.get(`/invoices/${process.env.GATEWAY_SDK_INVOICE}`);
  assert.equal(e.error.detail, `Invoice ${invoice.invoice_number} of 1.23 USD was due on 2025-03-03.`);
  assert.equal(e.error.hint, 'Pay open invoices.');
});
await check('GET /invoices/{id}: the account\'s own invoice document; another\'s is NotFoundError', async () => {
  const overdue = client('sk_sdk_overdue');
  const invoice = await overdue.get(`/invoices/${process.env.GATEWAY_SDK_INVOICE}`);
  assert.equal(invoice.object, 'invoice');
  assert.equal(invoice.status, 'open');
  assert.equal(invoice.amount_due_micros, 1230000);
  assert.equal(invoice.period.start, '2025-01-01');
  const e = await raised(overdue.get(`/invoices/${process.env.GATEWAY_OTHER_INVOICE}`));
  assert.ok(e instanceof OpenAI.NotFoundError, e);
});

// --- 50 concurrent images.generate on 1.00 USD at 0.06 each: exactly 16 admitted
await check('50 concurrent images.generate on 1.00 USD: 16 admitted, 34 refused with 402', async () => {
  const crowd = client('sk_sdk_crowd');
  const results = await Promise.allSettled(
    Array.from({ length: 50 }, () => crowd.images.generate({ model: 'img', prompt: 'x' })));
  const admitted = results.filter((r) => r.status === 'fulfilled');
  const refused = results.filter((r) => r.status === 'rejected').map((r) => r.reason);
  assert.equal(admitted.length, 16);
  assert.equal(refused.length, 34);
  assert.ok(refused.every((e) => e.status === 402 && e.code === 'insufficient_balance'), refused[0]);
  assert.equal(admitted.reduce((sum, r) => sum + r.value.metadata.cost_micros, 0), 960000);
  assert.equal(await available(crowd), 40000);
});

const version = JSON.parse(fs.readFileSync(path.join(path.dirname(require.resolve('openai')), 'package.json'))).version;
console.log(`SDK test (openai ${version}, Node ${process.version}): ${passed} passed, ${failed} failed`);
process.exit(Math.min(failed, 100));
