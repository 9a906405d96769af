/* Unit tests for files: mkdir -p (modes, an existing file in the way) and
 * whole-file writes (replaced at once, no temporary file left, devices and
 * symlinks written through). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

#include "check.h"
#include "core/files.h"

static char tmp[64];

static char *slurp(const char *path)
{
    static char buf[256];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    return buf;
}

static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

int main(void)
{
    snprintf(tmp, sizeof(tmp), "/tmp/tokentap-files-XXXXXX");
    if (!mkdtemp(tmp))
        return 99;
    char path[256], file[256], link[300];
    struct stat sb;

    snprintf(path, sizeof(path), "%s/a/b/c", tmp);
    CHECK_INT(files_make_dirs(path, 0700), 0);
    CHECK(stat(path, &sb) == 0 && S_ISDIR(sb.st_mode) && (sb.st_mode & 0777) == 0700);
    CHECK_INT(files_make_dirs(path, 0700), 0); /* already there */
    snprintf(path, sizeof(path), "%s/a/b/c/", tmp);
    CHECK_INT(files_make_dirs(path, 0700), 0);
    CHECK_INT(files_make_dirs("", 0700), -ENOENT);

    snprintf(file, sizeof(file), "%s/a/out.json", tmp);
    CHECK_INT(files_write_atomic(file, "first", 5), 0);
    CHECK_STR(slurp(file), "first");
    CHECK_INT(files_write_atomic(file, "second", 6), 0);
    CHECK_STR(slurp(file), "second");
    CHECK_INT(files_write_atomic(file, "", 0), 0);
    CHECK_STR(slurp(file), "");
    snprintf(path, sizeof(path), "%s/a", tmp);
    CHECK_INT(entries(path), 2); /* b and out.json: no temporary file left */

    /* A file in the way of a directory; a directory in the way of a file. */
    snprintf(path, sizeof(path), "%s/a/out.json/x", tmp);
    CHECK_INT(files_make_dirs(path, 0700), -ENOTDIR);
    snprintf(path, sizeof(path), "%s/a/b", tmp);
    CHECK(files_write_atomic(path, "x", 1) < 0);
    CHECK(stat(path, &sb) == 0 && S_ISDIR(sb.st_mode));
    snprintf(path, sizeof(path), "%s/missing/out.json", tmp);
    CHECK_INT(files_write_atomic(path, "x", 1), -ENOENT);

    /* A symlink stays a symlink; a device is written through. */
    snprintf(link, sizeof(link), "%s/a/link.json", tmp);
    CHECK_INT(symlink(file, link), 0);
    CHECK_INT(files_write_atomic(link, "via link", 8), 0);
    CHECK(lstat(link, &sb) == 0 && S_ISLNK(sb.st_mode));
    CHECK_STR(slurp(file), "via link");
    CHECK_INT(files_write_atomic("/dev/null", "x", 1), 0);

    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
    if (system(cmd) != 0)
        return 99;
    return check_done("test_files");
}
