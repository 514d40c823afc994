/** The chat service's frames, declared once (docs/chat.md). No I/O here. */
import { declareFrames } from './schema.js';

/** Longest room or member name, in characters. */
export const CHAT_MAX_NAME = 64;

/**
 * A room or a member name: 1-64 characters, no control characters, no spaces at either end
 * (two names that look the same must be the same name).
 */
const NAME_PATTERN = /^(?=[^\s])[^\u0000-\u001f\u007f]*(?<=[^\s])$/u;

/** Declares a room or name field; `what` names it in the error message. */
function chatName(what: 'room' | 'name', optional: boolean) {
  return {
    kind: 'string',
    min: 1,
    max: CHAT_MAX_NAME,
    pattern: NAME_PATTERN,
    optional,
    message: `chat ${what} must be 1-${CHAT_MAX_NAME} characters without control characters or spaces at either end`,
  } as const;
}

/** Most members a `joined` reply lists. */
const MAX_MEMBERS = 65536;

/** The chat service's frames. A room defaults to `lobby`. */
export const CHAT_FRAMES = declareFrames({
  join: {
    service: 'chat',
    role: 'request',
    from: 'client',
    id: 'required',
    body: 0,
    phases: ['anonymous', 'authenticated'],
    replies: ['joined'],
    final: ['joined'],
    doc: 'joins `room` as `name` (unique in the room, else CONFLICT)',
    fields: { room: chatName('room', true), name: chatName('name', false) },
  },
  joined: {
    service: 'chat',
    role: 'reply',
    from: 'server',
    id: 'required',
    body: 0,
    doc: 'final: joined; `members` is everyone in the room, this member included',
    fields: {
      room: { kind: 'string', max: CHAT_MAX_NAME },
      name: { kind: 'string', max: CHAT_MAX_NAME },
      members: { kind: 'strings', minItems: 0, maxItems: MAX_MEMBERS, itemMax: CHAT_MAX_NAME },
    },
  },
  leave: {
    service: 'chat',
    role: 'request',
    from: 'client',
    id: 'required',
    body: 0,
    phases: ['anonymous', 'authenticated'],
    replies: ['left'],
    final: ['left'],
    doc: 'leaves `room` (NOT_FOUND when not in it)',
    fields: { room: chatName('room', true) },
  },
  left: {
    service: 'chat',
    role: 'reply',
    from: 'server',
    id: 'required',
    body: 0,
    doc: 'final: left the room',
    fields: { room: { kind: 'string', max: CHAT_MAX_NAME, optional: true } },
  },
  say: {
    service: 'chat',
    role: 'message',
    from: 'client',
    id: 'none',
    body: 'max',
    phases: ['anonymous', 'authenticated'],
    doc: "the body to everyone in `room`; over the server's message limit (64 KiB) is TOO_LARGE",
    fields: { room: chatName('room', true) },
  },
  message: {
    service: 'chat',
    role: 'message',
    from: 'server',
    id: 'none',
    body: 'max',
    doc: 'what `from` said in `room`, the sender included',
    fields: {
      room: { kind: 'string', max: CHAT_MAX_NAME },
      from: { kind: 'string', max: CHAT_MAX_NAME },
    },
  },
  presence: {
    service: 'chat',
    role: 'message',
    from: 'server',
    id: 'none',
    body: 0,
    doc: '`name` joined or left `room`; `reason` when dropped',
    fields: {
      room: { kind: 'string', max: CHAT_MAX_NAME },
      name: { kind: 'string', max: CHAT_MAX_NAME },
      event: { kind: 'enum', values: ['join', 'leave'] },
      reason: { kind: 'string', max: 1024, optional: true },
    },
  },
  notice: {
    service: 'chat',
    role: 'message',
    from: 'server',
    id: 'none',
    body: 0,
    doc: 'the server tells the room something (`bus-down`, `bus-up`)',
    fields: {
      room: { kind: 'string', max: CHAT_MAX_NAME },
      event: { kind: 'string', max: 64 },
      text: { kind: 'string', max: 1024 },
    },
  },
});
