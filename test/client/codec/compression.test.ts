import { deflateRawSync, deflateSync, gunzipSync, gzipSync, inflateSync } from 'node:zlib';
import t from 'tap';
import { chooseEncoding, compress, decompress } from '@modelgate/client/codec';

const text = Buffer.from('{"inputs":[]}'.repeat(100));

t.test('request bodies: gzip, zlib-wrapped and raw deflate, identity', async (t) => {
  t.same(await decompress(gzipSync(text), 'gzip', 1 << 20), text);
  t.same(await decompress(gzipSync(text), 'x-gzip', 1 << 20), text);
  t.same(await decompress(deflateSync(text), 'deflate', 1 << 20), text, "zlib-wrapped, as Python's zlib.compress writes it");
  t.same(await decompress(deflateRawSync(text), 'Deflate', 1 << 20), text, 'raw deflate, as some clients send it');
  t.equal(await decompress(text, undefined, 10), text, 'no coding: as it is (the body limit applied already)');
  t.equal(await decompress(text, ' identity ', 10), text);
});

t.test('a body that inflates past the limit is refused with 413; unknown codings 415; corrupt data 400', async (t) => {
  const bomb = gzipSync(Buffer.alloc(256 * 1024 * 1024));
  const started = process.hrtime.bigint();
  await t.rejects(decompress(bomb, 'gzip', 1024 * 1024), { statusCode: 413, code: 'MG_BODY_TOO_LARGE' });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  t.comment(`refused a 256 MiB bomb in ${ms.toFixed(1)} ms`);
  t.same(await decompress(gzipSync(Buffer.alloc(1024)), 'gzip', 1024), Buffer.alloc(1024), 'exactly the limit is fine');
  await t.rejects(decompress(text, 'br', 1 << 20), { statusCode: 415, message: "Content-Encoding 'br' is not supported: send gzip, deflate or identity" });
  await t.rejects(decompress(Buffer.from('not gzip'), 'gzip', 1 << 20), { statusCode: 400, message: /^the request body is not valid gzip data/ });
});

t.test('Accept-Encoding: the coding with the highest q-value, gzip on a tie', async (t) => {
  const cases: Array<[string | undefined, string | undefined]> = [
    [undefined, undefined], ['', undefined], ['gzip', 'gzip'], ['deflate', 'deflate'], ['gzip, deflate', 'gzip'],
    ['deflate;q=1, gzip;q=0.5', 'deflate'], ['br', undefined], ['*', 'gzip'], ['gzip;q=0, *', 'deflate'],
    ['identity', undefined], ['x-gzip', 'gzip'], ['gzip;q=abc, deflate', 'deflate'],
  ];
  for (const [header, expected] of cases) t.equal(chooseEncoding(header), expected, String(header));
  t.same(gunzipSync(await compress(text, 'gzip')), text);
  t.same(inflateSync(await compress(text.toString(), 'deflate')), text);
});
