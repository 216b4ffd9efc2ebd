//! Where a path of the host leads, whether it exists or not: the places a child is given, or
//! hidden from it, are compared once every link is followed. And where a program named
//! without a path would be run from (`find_program`).

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Most links followed in one path, as Linux does (`ELOOP` past it).
const MAX_LINKS: usize = 40;

/// `path` made absolute (against the current directory), with every link followed as far as
/// it exists: what is left, which does not exist, is taken as written, each `..` taking off
/// the name before it. The same as `canonicalize` for a path that exists; for one that does
/// not, where it would be once made.
///
/// A link that leads nowhere is followed too, so that the place it names counts, not the link.
/// What cannot be read (a loop of links, a directory that may not be searched) ends the
/// following: the rest is taken as written.
pub fn resolve_path(path: &Path) -> std::io::Result<PathBuf> {
    let absolute = std::path::absolute(path)?;
    // Still to walk, last first.
    let mut pending: Vec<OsString> = Vec::new();
    push_components(&mut pending, &absolute);
    let mut resolved = PathBuf::from("/");
    let mut following = true;
    let mut links = 0;
    while let Some(name) = pending.pop() {
        match name.to_str() {
            Some("/") => resolved = PathBuf::from("/"),
            Some(".") => {}
            Some("..") => {
                resolved.pop();
            }
            _ => {
                let next = resolved.join(&name);
                if following {
                    match std::fs::symlink_metadata(&next) {
                        Ok(meta) if meta.file_type().is_symlink() => {
                            match std::fs::read_link(&next) {
                                Ok(target) if links < MAX_LINKS => {
                                    links += 1;
                                    push_components(&mut pending, &target);
                                    continue;
                                }
                                _ => following = false,
                            }
                        }
                        Ok(_) => {}
                        Err(_) => following = false,
                    }
                }
                resolved = next;
            }
        }
    }
    Ok(resolved)
}

/// Puts the components of `path` on the stack `pending`, its first on top.
fn push_components(pending: &mut Vec<OsString>, path: &Path) {
    let start = pending.len();
    for component in path.components() {
        pending.push(match component {
            Component::RootDir | Component::Prefix(_) => OsString::from("/"),
            Component::CurDir => OsString::from("."),
            Component::ParentDir => OsString::from(".."),
            Component::Normal(name) => name.to_os_string(),
        });
    }
    pending[start..].reverse();
}

/// Where `program` would be run from: itself when it is a path, else the first file of that
/// name on PATH; an error of kind NotFound or PermissionDenied when it is missing or cannot be
/// run. Checked before a confined run: bwrap itself would start, and say so only later.
pub fn find_program(program: &std::path::Path) -> io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &std::path::Path| -> io::Result<()> {
        let meta = p.metadata()?;
        if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
            Ok(())
        } else {
            Err(io::Error::from(io::ErrorKind::PermissionDenied))
        }
    };
    if program.components().count() > 1 {
        return runnable(program).map(|()| program.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| runnable(p).is_ok())
        .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_are_followed_as_far_as_the_path_exists() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        symlink(root.join("a"), root.join("to-a")).unwrap();
        symlink("a/b", root.join("relative")).unwrap();
        symlink(root.join("gone/deeper"), root.join("dangling")).unwrap();
        symlink("loop", root.join("loop")).unwrap();
        for (path, expected) in [
            ("a/b", root.join("a/b")),
            ("to-a/b", root.join("a/b")),
            ("relative/../b", root.join("a/b")),
            ("to-a/missing/more", root.join("a/missing/more")),
            ("missing/../../x", root.parent().unwrap().join("x")),
            ("dangling/below", root.join("gone/deeper/below")),
            ("loop/x", root.join("loop/x")),
        ] {
            assert_eq!(resolve_path(&root.join(path)).unwrap(), expected, "{path}");
        }
        assert_eq!(
            resolve_path(&root.join("to-a/b")).unwrap(),
            root.join("to-a/b").canonicalize().unwrap()
        );
        assert_eq!(
            resolve_path(Path::new("/../../etc/x")).unwrap(),
            Path::new("/etc/x")
        );
    }
}
