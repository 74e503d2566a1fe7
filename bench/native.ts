// native.ts — loading allocators into this process for the FFI microbenchmarks: libc's
// own dlopen/dlsym (so we hold raw function pointers to pass to the native kernel) and
// bun:ffi CFunction wrappers around them.
import { CFunction, CString, dlopen, FFIType, type Pointer } from "bun:ffi";

const RTLD_NOW = 2;

const libc = dlopen("libc.so.6", {
  dlopen: { args: [FFIType.cstring, FFIType.i32], returns: FFIType.ptr },
  dlsym: { args: [FFIType.ptr, FFIType.cstring], returns: FFIType.ptr },
  dlerror: { args: [], returns: FFIType.ptr },
  gnu_get_libc_version: { args: [], returns: FFIType.cstring },
});

function cstr(s: string): Buffer {
  return Buffer.from(`${s}\0`);
}

function lastError(): string {
  const p = libc.symbols.dlerror();
  return p ? new CString(p).toString() : "unknown dlerror";
}

/** dlopen(path, RTLD_NOW); throws with dlerror's text. */
export function openLibrary(path: string): Pointer {
  const handle = libc.symbols.dlopen(cstr(path), RTLD_NOW);
  if (!handle || typeof handle === "bigint") throw new Error(`dlopen ${path}: ${lastError()}`);
  return handle;
}

/** Address of a symbol, or null when the library does not define it. */
export function findSymbol(handle: Pointer, name: string): Pointer | null {
  const address = libc.symbols.dlsym(handle, cstr(name));
  return typeof address === "number" && address !== 0 ? address : null;
}

export function requireSymbol(handle: Pointer, name: string, path: string): Pointer {
  const p = findSymbol(handle, name);
  if (p === null) throw new Error(`${path} has no symbol ${name}`);
  return p;
}

export function glibcVersion(): string {
  return String(libc.symbols.gnu_get_libc_version());
}

export interface AllocPair {
  alloc: (size: number) => number | null;
  free: (ptr: number | null) => unknown;
  allocPtr: Pointer;
  freePtr: Pointer;
}

/** Callable alloc/free of a loaded library, with their raw addresses. */
export function allocPair(handle: Pointer, path: string, allocName: string, freeName: string): AllocPair {
  const allocPtr = requireSymbol(handle, allocName, path);
  const freePtr = requireSymbol(handle, freeName, path);
  const alloc = CFunction({ ptr: allocPtr, args: [FFIType.u64], returns: FFIType.ptr }) as unknown as (size: number) => number | null;
  const free = CFunction({ ptr: freePtr, args: [FFIType.ptr], returns: FFIType.void }) as unknown as (p: number | null) => unknown;
  return { alloc, free, allocPtr, freePtr };
}

/** A function of the library reading a C string (hak_version, hak_build_id), or null. */
export function readCString(handle: Pointer, name: string): string | null {
  const p = findSymbol(handle, name);
  if (p === null) return null;
  const fn = CFunction({ ptr: p, args: [], returns: FFIType.cstring }) as unknown as () => unknown;
  return String(fn());
}

export type Kernel = (allocPtr: Pointer, freePtr: Pointer, size: number, n: number) => number;

/** The native pairs kernel `name(alloc_fn, free_fn, size, n) -> elapsed ns`, or null. */
export function kernelFrom(handle: Pointer, name: string): Kernel | null {
  const p = findSymbol(handle, name);
  if (p === null) return null;
  const fn = CFunction({ ptr: p, args: [FFIType.ptr, FFIType.ptr, FFIType.u64, FFIType.u64], returns: FFIType.u64_fast });
  return fn as unknown as Kernel;
}

/** A no-op-ish FFI call for the floor: libc's abs(). */
export function noopCall(): (x: number) => unknown {
  const handle = openLibrary("libc.so.6");
  const p = requireSymbol(handle, "abs", "libc.so.6");
  return CFunction({ ptr: p, args: [FFIType.i32], returns: FFIType.i32 }) as unknown as (x: number) => unknown;
}
