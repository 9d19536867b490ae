// Package merge merges consecutive small layers of a built image into fewer,
// larger layers without rebuilding it (`ov merge`, `ov build --merge`).
//
// Plan groups layers by compressed size and WritePlan prints it (dry run);
// Image merges as Plan says, Apply as a given plan says. FromEngine does the
// whole `ov merge <image>`: it saves the image out of docker or podman,
// merges it and loads it back (package engine); an image whose history
// shows that Plan keeps every layer (merged before with this limit or a
// larger one) it leaves alone without saving it.
//
// A merged layer applied on top of any lower layers gives the filesystem the
// group's layers give, applied in order (OCI image spec semantics: a whiteout
// or opaque marker hides lower layers only). So whiteouts and opaque markers
// that may hide content below the group are kept; a hard link whose target a
// later layer of the group replaces or deletes gets the target's original
// content. The merged tar lists every path once, directories before their
// content, whiteouts first, and never a whiteout next to an entry for the same
// path (docker and podman unpack that combination inconsistently).
//
// Merging streams: a group is read twice (headers first, then content) and
// written to a temp file, so memory grows with the number of tar entries,
// never with file sizes. Merged layers live in a temp directory until
// Merged.Close; on error or context cancellation nothing is left behind (a
// CLI should cancel the context on SIGINT/SIGTERM, see signal.NotifyContext).
//
// Not mergeable (an error, the image is left alone): a group with a hard link
// to a file below the group that a later layer of the group changes, since
// the original content is not in the group.
package merge
