/**
 * commander, loaded with require(): it is a CommonJS package, and importing it as ESM costs
 * every run of the CLI its ESM wrapper and a lexer pass over its source (a few ms of start-up,
 * docs/benchmarks.md). Import `Command` and `Option` from here, types from 'commander'.
 */
import { createRequire } from 'node:module';
import type * as commander from 'commander';

const loaded = createRequire(import.meta.url)('commander') as typeof commander;

/** commander's Command class. */
export const Command = loaded.Command;
/** commander's Command, as a type. */
export type Command = commander.Command;
/** commander's Option class. */
export const Option = loaded.Option;
/** commander's Option, as a type. */
export type Option = commander.Option;
