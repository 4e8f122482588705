//! The `mailmove` command: thin argument parsing, progress display and reports over the library.

mod cli;

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    cli::main()
}

/// glibc gives each thread that allocates an arena of its own (up to eight a core), and each
/// arena keeps what was freed in it: the bodies of the messages its thread handled. The copy
/// bounds the bodies in flight (32 MiB by default), but with a dozen reading, writing and
/// runtime threads an mbox → Maildir copy of 475 MB peaked at 58–73 MB; with two arenas,
/// 44–50 MB, at the same speed (issue 16). Embedders on glibc get the same with
/// `MALLOC_ARENA_MAX=2` in the environment, which this call leaves to win when set.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: `mallopt` only sets a tunable of the allocator; it is called once, first thing
        // in `main`, before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
