/**
 * What a remote V2 server says of itself and of a model, read defensively: whatever it answers
 * with status 200 is checked field by field, so a malformed answer is reported as what is
 * wrong with it, and an optional field left out (a server metadata without `extensions`) is
 * read as the protocol says, not as a failure.
 */
import { isDatatype, type Signature, type TensorSpec } from '@modelgate/client/codec';

/** The remote's answer does not have the shape the V2 protocol gives it. */
export class MalformedMetadata extends Error {}

/** Whether the server has the binary tensor extension; `extensions` is optional, and absent means none. */
export function hasBinaryExtension(server: unknown): boolean {
  if (server === null || typeof server !== 'object' || Array.isArray(server)) throw new MalformedMetadata('its server metadata (GET /v2) is not a JSON object');
  const extensions = (server as { extensions?: unknown }).extensions;
  if (extensions === undefined || extensions === null) return false;
  if (!Array.isArray(extensions) || extensions.some((item) => typeof item !== 'string')) {
    throw new MalformedMetadata("its server metadata (GET /v2) has 'extensions' that is not a list of strings");
  }
  return extensions.includes('binary_tensor_data');
}

/** The model's inputs and outputs from its metadata, negative dimensions read as dynamic (-1). */
export function signatureOf(metadata: unknown, model: string): Signature {
  const where = `its metadata of model '${model}'`;
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) throw new MalformedMetadata(`${where} is not a JSON object`);
  const tensors = (field: 'inputs' | 'outputs'): TensorSpec[] => {
    const list = (metadata as Record<string, unknown>)[field];
    if (!Array.isArray(list)) throw new MalformedMetadata(`${where} has no '${field}' list`);
    return list.map((tensor: unknown, index) => {
      const at = `${where}: ${field}[${index}]`;
      const { name, datatype, shape } = (tensor ?? {}) as { name?: unknown; datatype?: unknown; shape?: unknown };
      if (typeof name !== 'string' || name === '') throw new MalformedMetadata(`${at} has no name`);
      if (typeof datatype !== 'string') throw new MalformedMetadata(`${at} ('${name}') has no datatype`);
      if (!isDatatype(datatype)) throw new MalformedMetadata(`${at}: tensor '${name}' has datatype ${datatype}, which the gateway does not carry`);
      if (!Array.isArray(shape) || shape.some((dim) => !Number.isSafeInteger(dim))) throw new MalformedMetadata(`${at} ('${name}') has a shape that is not a list of integers`);
      return { name, datatype, shape: shape.map((dim: number) => (dim < 0 ? -1 : dim)) };
    });
  };
  return { inputs: tensors('inputs'), outputs: tensors('outputs') };
}
