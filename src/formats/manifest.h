/* manifest.h — the COMPLETE marker of a checkpoint directory as a manifest: every file the
 * directory holds, with its size and CRC-32 (zlib), so that a checkpoint counts as valid only
 * when all of them are there, whole and unchanged.
 *
 *   smdlm-manifest 1
 *   SIZE CRC32 NAME        one line per file (decimal size, 8 hex digits, the file's name)
 *
 * A marker that does not start with the header line (older checkpoints wrote "ok") lists
 * nothing and checks nothing. CRC-32 detects truncation, bit rot and files mixed from two
 * writers; it is no cryptographic hash.
 */
#ifndef SMDLM_MANIFEST_H
#define SMDLM_MANIFEST_H

#define MANIFEST_FILE "COMPLETE"

/* Writes dir/COMPLETE (atomically) listing every regular file of dir but the marker itself
 * and temporaries (*.tmp.*). */
int manifest_write(const char *dir);

/* Checks dir against its COMPLETE manifest: every listed file present with the recorded size
 * and CRC-32. Returns 0 when it holds (or the marker is an old one without a list), 1 when dir
 * has no COMPLETE marker (not a checkpoint), −1 with an error naming the first file that
 * differs. */
int manifest_verify(const char *dir);

#endif
