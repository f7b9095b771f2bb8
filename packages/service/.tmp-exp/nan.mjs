import { createService } from '/work/main/packages/service/dist/index.js';
const app = createService({ logLevel: 'silent' });
await app.ready();
const r = await app.inject('/metrics');
console.log(
  r.body
    .split('\n')
    .filter((l) => /Nan|NaN/.test(l))
    .join('\n'),
);
await app.close();
