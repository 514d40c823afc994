/**
 * sockit: a socket toolkit. `serve()` starts a framed server, `connect()` opens a client;
 * `serveRaw()` runs a plain-bytes handler with the socketserver lifecycle (setup → handle → finish).
 */

export type { Bus, BusState } from './bus/bus.js';
export { MemoryHub, memoryBus } from './bus/memory.js';
export { type NatsBusOptions, natsBus } from './bus/nats.js';
export {
  type ChatMessage,
  type ChatNotice,
  type ChatPresence,
  ChatRoom,
  type JoinChatOptions,
  joinChat,
} from './client/chat.js';
export { Client, type ConnectOptions, connect, resolveClientToken, type Welcome } from './client/client.js';
export {
  type ExecCommand,
  type ExecExit,
  type ExecOptions,
  type ExecResult,
  type ExecSignal,
  type RemoteExecOptions,
  RemoteProcess,
  type SpawnRemoteOptions,
} from './client/exec.js';
export type {
  FileEntry,
  ListOptions,
  StatOptions,
  TransferOptions,
  TransferProgress,
  TransferResult,
} from './client/files.js';
export {
  planDownload,
  planUpload,
  removeTree,
  runDownloads,
  runUploads,
  type TransferItem,
  type TreeCallbacks,
} from './client/files-tree.js';
export { ClientRequest, type RequestOptions } from './client/request.js';
export {
  forwardLocal,
  forwardRemote,
  forwardSocks,
  openTunnelStream,
  type TunnelEndpoint,
  type TunnelReport,
  type TunnelTarget,
} from './client/tunnel.js';
export { ERROR_CATALOGUE, type ErrorCode, isErrorCode, SockitError, type WireErrorCode } from './errors.js';
export { createLogger, type Logger, type LoggerOptions, type LogLevel, silentLogger } from './log.js';
export { computeProof, PROTOCOL_VERSION, verifyProof } from './protocol/auth.js';
export {
  CATALOGUE,
  type CatalogueEntry,
  type CatalogueHeader,
  FrameCatalogue,
  type HeaderOfType,
} from './protocol/catalogue.js';
export { type DecoderOptions, FrameDecoder, FrameError } from './protocol/decoder.js';
export {
  type BodyEdit,
  DEFAULT_MAX_BODY_BYTES,
  encodeFrame,
  encodeFrameToBuffer,
  type Frame,
  type FrameHeader,
  MAX_HEADER_BYTES,
} from './protocol/frame.js';
export {
  declareFrames,
  type FieldSpec,
  type FrameDeclarations,
  type FrameRole,
  type FrameSpec,
  type HeaderOf,
  type TrustPhase,
} from './protocol/schema.js';
export { DEFAULT_LIMITS, type Limits } from './server/limits.js';
export {
  type RawConnection,
  type RawHandler,
  type RawPeer,
  RawServer,
  type ServeRawOptions,
  serveRaw,
} from './server/raw-server.js';
export type { ReplyHeader, ServerRequest } from './server/request.js';
export { type ServeOptions, Server, serve } from './server/server.js';
export type { ConnectionContext, MessageHandler, RequestHandler, Service } from './server/service.js';
export { type ChatOptions, type ChatService, chatService } from './services/chat.js';
export { type EchoOptions, type EchoTransform, echoService } from './services/echo.js';
export {
  type ExecAuditEntry,
  type ExecService,
  type ExecServiceOptions,
  execService,
} from './services/exec/index.js';
export { type FilesOptions, filesService } from './services/files/index.js';
export {
  TunnelAllowList,
  type TunnelService,
  type TunnelServiceOptions,
  tunnelService,
} from './services/tunnel/index.js';
export { defaultStateDir } from './state.js';
export { type Address, formatAddress, isLoopback, parseAddress } from './transport/address.js';
export type { TlsTrust } from './transport/dial.js';
export type { TlsServerCredentials } from './transport/listen.js';
export { generateSelfSignedCertificate, loadOrCreateCertificate } from './transport/self-signed.js';
export {
  assertDatagramSize,
  connectUdp,
  type DatagramPeer,
  listenUdp,
  MAX_DATAGRAM_BYTES,
  type UdpConnection,
  type UdpListener,
  type UdpReply,
  type UdpRequestOptions,
  udpRequest,
} from './transport/udp.js';
