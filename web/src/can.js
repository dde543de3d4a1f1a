// XoQ's CAN messages as the relay carries them on a bus's `state` track: each MoQ frame is one
// encoded XoQ message, [type u8][body length u32 BE][body]; a CanFrames body (type 0x30) is a
// u16 BE count, then per frame: flags u8, id u32 BE, length u8, timestamp (µs since the Unix
// epoch) u64 BE, then the data (none for a remote-transmission request). The relay's bytes
// are a peer's: anything that does not parse exactly is refused, never half-read.

export const CAN_FRAMES = 0x30;
const HEADER = 5;
const FRAME_HEADER = 1 + 4 + 1 + 8;
const RTR = 0x02;

/** The frames of one encoded message, or null if it is not a well-formed CanFrames message. */
export function decodeCanFrames(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.length < HEADER + 2) return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (v.getUint8(0) !== CAN_FRAMES) return null;
  if (v.getUint32(1) !== bytes.length - HEADER) return null;
  const count = v.getUint16(HEADER);
  const frames = [];
  let at = HEADER + 2;
  for (let i = 0; i < count; i++) {
    if (at + FRAME_HEADER > bytes.length) return null;
    const flags = v.getUint8(at);
    const id = v.getUint32(at + 1);
    const len = v.getUint8(at + 5);
    const timestampUs = v.getBigUint64(at + 6);
    at += FRAME_HEADER;
    const n = flags & RTR ? 0 : Math.min(len, 64);
    if (at + n > bytes.length) return null;
    frames.push({ id, flags, len, timestampUs, data: bytes.slice(at, at + n) });
    at += n;
  }
  return at === bytes.length ? frames : null;
}

const P_MAX = 12.5;

/** A simulated Damiao motor's feedback (id 0x11..): its motor, state and position in rad. */
export function damiaoFeedback(frame) {
  if (frame.id < 0x11 || frame.id > 0x1f || frame.data.length !== 8) return null;
  const d = frame.data;
  const raw = (d[1] << 8) | d[2];
  return {
    motor: d[0] & 0x0f,
    enabled: d[0] >> 4 === 1,
    position: (raw / 65535) * 2 * P_MAX - P_MAX,
  };
}
