/* The few file-system questions the pure-Lua parts ask (the cache's directory, whether output
 * goes to a terminal), answered with system calls: standard Lua has no way to ask them, and a
 * shell for each (`mkdir`, `find`, `test -t`) cost a command-line call about 30 ms of start-up. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "private.h"

/***
 * @module codeartsbuild.core
 */

static int push_errno(lua_State *L, const char *what, const char *path, int error)
{
	lua_pushnil(L);
	lua_pushfstring(L, "%s %s: %s", what, path, strerror(error));
	return 2;
}

/* mkdir -p with mode 0700 for every directory it makes. */
static int make_directories(char *path)
{
	char *slash;

	for (slash = strchr(path + 1, '/');; slash = strchr(slash + 1, '/')) {
		if (slash)
			*slash = '\0';
		if (path[0] != '\0' && mkdir(path, 0700) != 0 && errno != EEXIST) {
			if (slash)
				*slash = '/';
			return -1;
		}
		if (!slash)
			return 0;
		*slash = '/';
	}
}

/***
 * Makes a directory that only this user may use, or checks that one is: made when missing (its
 * missing parents too, mode 0700), then it must be a directory (not a symbolic link to one),
 * owned by this user and writable, and its mode is set to 0700.
 * @function private_dir
 * @tparam string path
 * @treturn[1] boolean true
 * @return[2] nil
 * @treturn[2] string message
 * @usage assert(core.private_dir(os.getenv("HOME") .. "/.cache/codeartsbuild"))
 */
static int module_private_dir(lua_State *L)
{
	size_t len;
	const char *path = luaL_checklstring(L, 1, &len);
	char copy[PATH_MAX];
	struct stat st;

	if (len == 0 || len >= sizeof copy || strlen(path) != len) {
		lua_pushnil(L);
		lua_pushstring(L, "not a usable directory name (empty, too long, or with a NUL)");
		return 2;
	}
	memcpy(copy, path, len + 1);
	if (make_directories(copy) != 0)
		return push_errno(L, "cannot make", path, errno);
	if (lstat(path, &st) != 0)
		return push_errno(L, "cannot examine", path, errno);
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || access(path, W_OK) != 0) {
		lua_pushnil(L);
		lua_pushfstring(L, "%s is not a directory (symbolic links are refused) that this user owns and may write",
				path);
		return 2;
	}
	if ((st.st_mode & 07777) != 0700 && chmod(path, 0700) != 0)
		return push_errno(L, "cannot set the mode of", path, errno);
	lua_pushboolean(L, 1);
	return 1;
}

/***
 * The regular files directly in a directory (symbolic links are not followed), in no order.
 * @function dir_files
 * @tparam string path
 * @treturn[1] {{name=string,size=integer,time=number},...} `time`: last modified, seconds since
 *   the epoch
 * @return[2] nil
 * @treturn[2] string message
 */
static int module_dir_files(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	DIR *dir = opendir(path);
	struct dirent *entry;
	lua_Integer n = 0;

	if (dir == NULL)
		return push_errno(L, "cannot read", path, errno);
	lua_newtable(L);
	while ((entry = readdir(dir)) != NULL) {
		struct stat st;
		if (fstatat(dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
			continue;
		lua_createtable(L, 0, 3);
		lua_pushstring(L, entry->d_name);
		lua_setfield(L, -2, "name");
		lua_pushinteger(L, (lua_Integer)st.st_size);
		lua_setfield(L, -2, "size");
		lua_pushnumber(L, (lua_Number)st.st_mtim.tv_sec + (lua_Number)st.st_mtim.tv_nsec / 1e9);
		lua_setfield(L, -2, "time");
		lua_rawseti(L, -2, (int)++n);
	}
	closedir(dir);
	return 1;
}

/***
 * Whether a file descriptor of this process is a terminal.
 * @function isatty
 * @tparam integer fd 0, 1 or 2 for standard input, output and error
 * @treturn boolean
 * @usage if core.isatty(2) then io.stderr:write("\r[####......]") end
 */
static int module_isatty(lua_State *L)
{
	lua_Integer fd = luaL_checkinteger(L, 1);

	lua_pushboolean(L, fd >= 0 && fd <= INT_MAX && isatty((int)fd));
	return 1;
}

void cb_files_open(lua_State *L, int module)
{
	static const luaL_Reg functions[] = {
		{"private_dir", module_private_dir},
		{"dir_files", module_dir_files},
		{"isatty", module_isatty},
		{NULL, NULL},
	};

	lua_pushvalue(L, module);
	luaL_setfuncs(L, functions, 0);
	lua_pop(L, 1);
}
