/**
 * Requests shaped byte for byte as NVIDIA's Triton Python HTTP client
 * (tritonclient.http) builds them: `_get_inference_request` in _utils.py,
 * InferInput.set_data_from_numpy and InferRequestedOutput, serialized with
 * python-rapidjson's compact `dumps`. The client sends no Content-Type; a
 * body with binary inputs carries Inference-Header-Content-Length.
 */
import { gzipSync, deflateSync } from 'node:zlib';

export interface PyInput {
  name: string;
  shape: number[];
  datatype: string;
  /** numpy's `tobytes()` (BYTES: 4-byte little-endian length + bytes per element) when binary. */
  raw?: Buffer;
  /** `[val.item() for val in flatten()]`, already as JSON text, when not binary. */
  jsonData?: string;
}

export interface PyOutput {
  name: string;
  binary?: boolean;
  classCount?: number;
}

/** The body and headers tritonclient.http's `infer()` sends. */
export function tritonRequest(inputs: PyInput[], options: { outputs?: PyOutput[]; requestId?: string; timeout?: number; compression?: 'gzip' | 'deflate'; responseCompression?: 'gzip' | 'deflate' } = {}): { body: Buffer; headers: Record<string, string> } {
  const tensors = inputs.map((input) => {
    let text = `{"name":${JSON.stringify(input.name)},"shape":[${input.shape.join(',')}],"datatype":"${input.datatype}"`;
    if (input.raw !== undefined) text += `,"parameters":{"binary_data_size":${input.raw.length}}`;
    else text += `,"data":${input.jsonData}`;
    return `${text}}`;
  });
  const parts: string[] = [];
  if (options.requestId !== undefined) parts.push(`"id":${JSON.stringify(options.requestId)}`);
  parts.push(`"inputs":[${tensors.join(',')}]`);
  const parameters: string[] = [];
  if (options.timeout !== undefined) parameters.push(`"timeout":${options.timeout}`);
  if (options.outputs !== undefined && options.outputs.length > 0) {
    parts.push(`"outputs":[${options.outputs.map((output) => {
      const params = [...(output.classCount ? [`"classification":${output.classCount}`] : []), `"binary_data":${output.binary ?? true}`];
      return `{"name":${JSON.stringify(output.name)},"parameters":{${params.join(',')}}}`;
    }).join(',')}]`);
  } else {
    parameters.push('"binary_data_output":true');
  }
  if (parameters.length > 0) parts.push(`"parameters":{${parameters.join(',')}}`);
  const json = `{${parts.join(',')}}`;
  const raws = inputs.flatMap((input) => (input.raw === undefined ? [] : [input.raw]));
  let body = Buffer.concat([Buffer.from(json), ...raws]);
  const headers: Record<string, string> = {};
  if (options.compression === 'gzip') {
    headers['Content-Encoding'] = 'gzip';
    body = gzipSync(body);
  } else if (options.compression === 'deflate') {
    headers['Content-Encoding'] = 'deflate';
    body = deflateSync(body);
  }
  const response = options.responseCompression ?? options.compression;
  if (response !== undefined) headers['Accept-Encoding'] = response;
  if (raws.length > 0) headers['Inference-Header-Content-Length'] = String(json.length);
  return { body, headers };
}

/** numpy's serialize_byte_tensor: each element as a 4-byte little-endian length and its bytes. */
export function serializeBytes(items: ReadonlyArray<string | Buffer>): Buffer {
  return Buffer.concat(items.flatMap((item) => {
    const bytes = typeof item === 'string' ? Buffer.from(item, 'utf8') : item;
    const length = Buffer.alloc(4);
    length.writeUInt32LE(bytes.length);
    return [length, bytes];
  }));
}

/** What InferResult reads back: the JSON header and each binary output's bytes, by name. */
export function readTritonResponse(body: Buffer, headerLength: string | undefined): { json: { model_name: string; model_version?: string; id?: string; outputs: Array<{ name: string; datatype: string; shape: number[]; data?: unknown[]; parameters?: { binary_data_size?: number } }> }; binary: Map<string, Buffer> } {
  const length = headerLength === undefined ? body.length : Number(headerLength);
  const json = JSON.parse(body.subarray(0, length).toString('utf8'));
  const binary = new Map<string, Buffer>();
  let offset = length;
  for (const output of json.outputs) {
    const size = output.parameters?.binary_data_size;
    if (size === undefined) continue;
    binary.set(output.name, body.subarray(offset, offset + size));
    offset += size;
  }
  return { json, binary };
}
