import assert from "node:assert/strict";
import { test } from "node:test";
import { damiaoFeedback, decodeCanFrames } from "./can.js";

function message(frames) {
  const body = [];
  body.push(0, frames.length);
  for (const f of frames) {
    body.push(f.flags, 0, 0, f.id >> 8, f.id & 0xff, f.data.length, 0, 0, 0, 0, 0, 0, 0, 7, ...f.data);
  }
  const n = body.length;
  return new Uint8Array([0x30, 0, 0, n >> 8, n & 0xff, ...body]);
}

test("a CanFrames message decodes to its frames", () => {
  const m = message([{ id: 0x11, flags: 0, data: [0x11, 0x80, 0x00, 0x80, 0x08, 0x00, 0x1e, 0x20] }]);
  const frames = decodeCanFrames(m);
  assert.equal(frames.length, 1);
  assert.equal(frames[0].id, 0x11);
  assert.equal(frames[0].timestampUs, 7n);
  const fb = damiaoFeedback(frames[0]);
  assert.equal(fb.motor, 1);
  assert.equal(fb.enabled, true);
  assert.ok(Math.abs(fb.position) < 0.001, `${fb.position}`);
});

test("anything malformed is refused whole", () => {
  const m = message([{ id: 0x123, flags: 0, data: [1, 2, 3] }]);
  assert.equal(decodeCanFrames(m.slice(0, m.length - 1)), null);
  const longer = new Uint8Array([...m, 0]);
  assert.equal(decodeCanFrames(longer), null);
  const wrongType = m.slice();
  wrongType[0] = 0x31;
  assert.equal(decodeCanFrames(wrongType), null);
  assert.equal(decodeCanFrames(new Uint8Array([])), null);
  const lies = m.slice();
  lies[6] = 9; // claims 9 frames
  assert.equal(decodeCanFrames(lies), null);
});
