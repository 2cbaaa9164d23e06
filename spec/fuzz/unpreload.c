/* Not a fuzzer: a helper of `make check-asan`. The sanitizer runtime is preloaded into lua5.4
 * (LD_PRELOAD=libasan.so:this.so) because the instrumented module is loaded by an interpreter
 * that is not. LD_PRELOAD would then pass to every program the specs start (python3, curl,
 * openssl, sh) and put them under ASan/LSan too, which changes their exit status and output.
 * This library, preloaded after the runtime, takes LD_PRELOAD out of the environment as lua5.4
 * starts: the runtime is already loaded, and the children start clean. (spec/support/run.lua
 * gives a child Lua the runtime back from CODEARTSBUILD_PRELOAD.) */
#include <stdlib.h>

__attribute__((constructor)) static void drop_ld_preload(void)
{
	unsetenv("LD_PRELOAD");
}
