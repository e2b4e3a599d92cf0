//! How C's `fgets` loop splits a file: the view kmod has of its line-oriented inputs
//! (`modules.order`, `modules.builtin`, `Module.symvers`, `System.map`).

/// kmod's usual line buffer, `PATH_MAX` bytes.
pub const PATH_MAX: usize = 4096;

/// Split `data` into the chunks successive `fgets(buf, buf_size, f)` calls return, each seen as
/// a C string: a chunk ends after a `\n` or after `buf_size - 1` bytes, and is then cut at its
/// first NUL. A chunk keeps its `\n`; one without it is a line that was too long or the last
/// line of a file with no final newline.
pub fn fgets_chunks(data: &[u8], buf_size: usize) -> Vec<&[u8]> {
    fgets_raw_chunks(data, buf_size)
        .into_iter()
        .map(|chunk| match memchr::memchr(0, chunk) {
            Some(nul) => &chunk[..nul],
            None => chunk,
        })
        .collect()
}

/// The chunks of [`fgets_chunks`] with every byte `fgets` stored, NULs and what follows them
/// included (for code that reads the buffer past its first NUL).
pub fn fgets_raw_chunks(data: &[u8], buf_size: usize) -> Vec<&[u8]> {
    let room = buf_size.saturating_sub(1).max(1);
    let mut chunks = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let take = match memchr::memchr(b'\n', &rest[..rest.len().min(room)]) {
            Some(nl) => nl + 1,
            None => rest.len().min(room),
        };
        chunks.push(&rest[..take]);
        rest = &rest[take..];
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_fgets() {
        assert_eq!(
            fgets_chunks(b"a\nbc\n", PATH_MAX),
            vec![&b"a\n"[..], b"bc\n"]
        );
        assert_eq!(
            fgets_chunks(b"a\nlast", PATH_MAX),
            vec![&b"a\n"[..], b"last"]
        );
        assert_eq!(fgets_chunks(b"abcde\n", 4), vec![&b"abc"[..], b"de\n"]);
        assert_eq!(
            fgets_chunks(b"a\0b\nc\n", PATH_MAX),
            vec![&b"a"[..], b"c\n"]
        );
        assert!(fgets_chunks(b"", PATH_MAX).is_empty());
    }
}
