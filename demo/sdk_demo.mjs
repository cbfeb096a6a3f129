// The demo's customer of the reference gateway, with OpenAI's own Node SDK:
// an image after its dry run, a video from cost_estimate to cost, and a 402.
// Run by demo/run.sh: OPENAI_SDK_DIR is where it installed the npm package
// `openai`, GATEWAY_URL the gateway's base URL (.../v1), API_KEY the key.
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.env.OPENAI_SDK_DIR, 'package.json'));
const OpenAI = require('openai');
// Debian 12's own Node (18) has no global File, which the SDK's uploads need
globalThis.File ??= (await import('node:buffer')).File;

const client = new OpenAI({ apiKey: process.env.API_KEY, baseURL: process.env.GATEWAY_URL });
const show = (code, value) => console.log(`> ${code}\n${JSON.stringify(value, null, 2)}`);
const say = (text) => console.log(`\n== ${text}`);

console.log(`const client = new OpenAI({ apiKey: '${process.env.API_KEY}', baseURL: '${process.env.GATEWAY_URL}' });`);
const image = { model: 'flux-pro', prompt: 'a lighthouse at dawn', size: '1024x1024' };
console.log(`const image = ${JSON.stringify(image)};`);

say('a dry run through the SDK\'s query option: the estimate, nothing generated or charged');
show("await client.images.generate(image, { query: { dryRun: true } })",
  await client.images.generate(image, { query: { dryRun: true } }));

say('the image for real: metadata.cost, charged once per Idempotency-Key');
show("await client.images.generate(image, { headers: { 'Idempotency-Key': 'sdk-img-1' } })",
  await client.images.generate(image, { headers: { 'Idempotency-Key': 'sdk-img-1' } }));

say('a video, as OpenAI\'s video API takes it: seconds "4" and size "1280x720" (billing: 4 s of 720p)');
let video = await client.videos.create({ model: 'veo-3', prompt: 'waves', seconds: '4', size: '1280x720' });
show("await client.videos.create({ model: 'veo-3', prompt: 'waves', seconds: '4', size: '1280x720' })", video);
while (video.status === 'queued' || video.status === 'in_progress') {
  await new Promise((resolve) => setTimeout(resolve, 1000));
  video = await client.videos.retrieve(video.id);
  console.log(`... ${video.id} is ${video.status}, metadata: ${JSON.stringify(video.metadata.cost !== undefined
    ? { cost: video.metadata.cost } : { cost_estimate: video.metadata.cost_estimate })}`);
}
show(`await client.videos.retrieve('${video.id}')`, video);
if (video.status === 'completed') {
  const content = await client.videos.downloadContent(video.id);
  console.log(`> await client.videos.downloadContent('${video.id}')\n${content.headers.get('content-type')},` +
    ` ${(await content.arrayBuffer()).byteLength} bytes`);
}

say('8 s of 1080p costs 0.40, more than is left: the SDK raises APIError 402');
try {
  await client.videos.create({ model: 'veo-3', prompt: 'waves', seconds: '8', size: '1920x1080' });
} catch (e) {
  if (!(e instanceof OpenAI.APIError)) throw e;
  console.log("> await client.videos.create({ model: 'veo-3', prompt: 'waves', seconds: '8', size: '1920x1080' })");
  console.log(`${e.constructor.name} ${e.status} ${e.code}`);
  console.log(JSON.stringify({ error: e.error }, null, 2));
}
