/* files: the output files of every command, made one way: directories
 * with `mkdir -p`, whole files through a temporary file and rename(2), so
 * a reader (or a crash) never sees half a results.json, report or
 * summary. */
#ifndef TOKENTAP_FILES_H
#define TOKENTAP_FILES_H

#include <stddef.h>
#include <sys/types.h>

/* Creates path and its missing parents with mode (existing ones are left
 * as they are). 0, -ENOTDIR when path exists but is not a directory,
 * -ENOENT for "", -ENOMEM or mkdir's -errno. */
int files_make_dirs(const char *path, mode_t mode);

/* Replaces the file at path with data[0, len) (mode 0644 when new):
 * written to path.tmp.PID, then renamed over path. A path that exists and
 * is not a regular file (a symlink, /dev/stdout, a FIFO) is written
 * through instead, so it stays what it is. 0, -ENAMETOOLONG or -errno; on
 * failure path is unchanged (atomic case) and no temporary file is left. */
int files_write_atomic(const char *path, const void *data, size_t len);

/* Reads the whole file at path (at most max bytes) into a malloc'ed,
 * NUL-terminated buffer. 0, -EISDIR, -EFBIG (larger than max), -ENOMEM or
 * -errno. */
int files_read(const char *path, size_t max, char **ret_buf, size_t *ret_len);

#endif
