/**
 * What travels on a bus subject: a JSON header and optional body bytes, as
 * `[u32 header length][header JSON][body]`, so a chat body crosses the bus without being
 * re-encoded as text.
 */
export interface Envelope {
  header: Record<string, unknown>;
  body: Buffer;
}

export function encodeEnvelope(header: Record<string, unknown>, body?: Uint8Array): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const out = Buffer.allocUnsafe(4 + json.length + (body?.length ?? 0));
  out.writeUInt32BE(json.length, 0);
  json.copy(out, 4);
  if (body) out.set(body, 4 + json.length);
  return out;
}

/** Undefined for bytes that are not an envelope (a foreign publisher on our subjects): dropped. */
export function decodeEnvelope(payload: Uint8Array): Envelope | undefined {
  if (payload.length < 4) return undefined;
  const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.length);
  const length = bytes.readUInt32BE(0);
  if (4 + length > bytes.length) return undefined;
  try {
    const header: unknown = JSON.parse(bytes.toString('utf8', 4, 4 + length));
    if (typeof header !== 'object' || header === null || Array.isArray(header)) return undefined;
    return { header: header as Record<string, unknown>, body: bytes.subarray(4 + length) };
  } catch {
    return undefined;
  }
}
