// Types of trionet-client.js (docs/protocol.md describes every frame; GET /schema/frames.json
// is their JSON Schema).

export type Id = number;

/** A frame the server sends: `type` says which (see docs/protocol.md). */
export interface ServerFrame {
  type: string;
  id?: Id;
  from?: Id | null;
  to?: Id;
  group_id?: Id;
  content?: string;
  timestamp?: string;
  [key: string]: unknown;
}

/** A frame this client sent that expects an answer, with its `client_id`. */
export interface SentFrame {
  type: string;
  client_id: string;
  [key: string]: unknown;
}

export interface Ack {
  type: "ack";
  client_id: string;
  id: Id | null;
  timestamp: string;
  persisted: boolean;
  last_read_id?: Id;
  unread_count?: number;
}

export interface ErrorFrame {
  type: "error";
  code: string;
  message: string;
  client_id: string | null;
}

export type ConnectionState = "connecting" | "online" | "offline";

export interface TrionetClientEvents {
  state: CustomEvent<{ state: ConnectionState; retryAt: number | null; attempt: number }>;
  open: CustomEvent<null>;
  frame: CustomEvent<ServerFrame>;
  ack: CustomEvent<{ frame: SentFrame; ack: Ack }>;
  failed: CustomEvent<{ frame: SentFrame; error: ErrorFrame }>;
  error: CustomEvent<ErrorFrame>;
  synced: CustomEvent<{ type: "synced"; last_id: Id; last_notification_id?: Id }>;
  gap: CustomEvent<{ type: "sync_gap"; from_id: Id }>;
  "session-ended": CustomEvent<null>;
}

export interface TrionetClientOptions {
  /** The WebSocket endpoint; default: /ws of the page's own origin. */
  url?: string;
  /** Resume point of the first connection (see idAt). */
  since?: Id;
  /** The WebSocket implementation; default: the global one (Node.js < 22: the `ws` package). */
  WebSocket?: unknown;
  /** The implementation's second argument, e.g. `{headers: {Authorization: "Bearer <jwt>"}}`. */
  socketOptions?: unknown;
  /** After a refused handshake: resolve to false when the session is over. */
  checkSession?: () => Promise<boolean>;
  backoffBase?: number;
  backoffMax?: number;
  pingEvery?: number;
  resendAfter?: number;
}

/** The smallest message id the server can allocate at `ms` (Unix milliseconds). */
export function idAt(ms: number): Id;

export class TrionetClient extends EventTarget {
  constructor(options?: TrionetClientOptions);
  /** The newest message / notification id seen (where a reconnect resumes). */
  lastId: Id | null;
  lastNotificationId: Id | null;
  state: ConnectionState;
  readonly isOpen: boolean;
  start(): void;
  stop(): void;
  retryNow(): void;
  /** Send a frame that is kept, and resent after reconnects, until acked or refused. */
  send(frame: { type: string; [key: string]: unknown }): SentFrame;
  /** Send a frame now or never (typing, reads); false when not connected. */
  sendEphemeral(frame: { type: string; [key: string]: unknown }): boolean;
  sendPrivate(to: Id, content: string): SentFrame;
  sendGroup(groupId: Id | string, content: string): SentFrame;
  edit(id: Id, content: string): SentFrame;
  remove(id: Id): SentFrame;
  read(target: { to?: Id; groupId?: Id | string; upTo: Id }): boolean;
  typing(target: { to?: Id; groupId?: Id | string }): boolean;
  /** Frames sent and not yet acknowledged, oldest first. */
  unacked(): SentFrame[];
  addEventListener<K extends keyof TrionetClientEvents>(
    type: K, listener: (event: TrionetClientEvents[K]) => void,
    options?: boolean | AddEventListenerOptions): void;
}
