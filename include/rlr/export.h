// RLR_API: what librlr exports.
//
// librlr is compiled with -fvisibility=hidden, so that its shared library exports the
// public API declared in include/rlr/ and nothing else: the Raft core, the wire format,
// the storage engine and the runtime stay internal, free to change without an ABI break.
// Every class and free function a public header declares is marked RLR_API. The macro is
// harmless in a static link and in a consumer's build (it only asks for the default
// visibility).
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define RLR_API [[gnu::visibility("default")]]
#else
#define RLR_API
#endif
