export { TunnelAllowList } from './allow.js';
export { type TunnelService, type TunnelServiceOptions, tunnelService } from './service.js';
