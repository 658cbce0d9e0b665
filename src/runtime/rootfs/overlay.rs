//! overlayfs mount options for a container rootfs.
//!
//! The kernel copies at most one page of mount data, so a long `lowerdir`
//! (many layers with long paths) is rewritten relative to the layers'
//! common parent, and the child `chdir`s there before mounting. If even
//! that does not fit, the start fails with a clear error.

use std::path::{Component, Path, PathBuf};

use super::super::container::ContainerError;

/// Mount data for the overlay and the directory to mount it from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Options {
    /// `chdir` here first: `lowerdir` then holds paths relative to it.
    pub chdir: Option<PathBuf>,
    /// `lowerdir=…[,upperdir=…,workdir=…]`.
    pub data: String,
}

/// Escapes the characters overlayfs splits on (`,` between options, `:`
/// between lower dirs) and the escape character itself.
fn escape(p: &Path) -> String {
    let s = p.to_string_lossy();
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        if matches!(ch, '\\' | ':' | ',') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

fn join_data(lowers: &[String], upper: Option<(&Path, &Path)>) -> String {
    let mut data = format!("lowerdir={}", lowers.join(":"));
    if let Some((u, w)) = upper {
        data.push_str(&format!(",upperdir={},workdir={}", escape(u), escape(w)));
    }
    data
}

/// Longest common ancestor directory of the parents of `paths`.
fn common_parent(paths: &[PathBuf]) -> PathBuf {
    let mut common: Vec<Component<'_>> = match paths.first().and_then(|p| p.parent()) {
        Some(p) => p.components().collect(),
        None => return PathBuf::from("/"),
    };
    for p in &paths[1..] {
        let parent: Vec<Component<'_>> =
            p.parent().map_or(Vec::new(), |q| q.components().collect());
        let n = common
            .iter()
            .zip(&parent)
            .take_while(|(a, b)| a == b)
            .count();
        common.truncate(n);
    }
    common.iter().collect()
}

/// Builds the overlay options for `layers` (top-most first) and the
/// optional upper/work dirs, fitting in `page` bytes including the NUL.
pub(crate) fn options(
    layers: &[PathBuf],
    upper: Option<(&Path, &Path)>,
    page: usize,
) -> Result<Options, ContainerError> {
    if layers.is_empty() {
        return Err(ContainerError::InvalidConfig {
            field: "rootfs.layers",
            value: String::new(),
            why: "an image needs at least one layer",
        });
    }
    for l in layers {
        if !l.is_absolute() {
            return Err(ContainerError::InvalidConfig {
                field: "rootfs.layers",
                value: l.display().to_string(),
                why: "layer paths must be absolute",
            });
        }
    }
    let absolute: Vec<String> = layers.iter().map(|l| escape(l)).collect();
    let data = join_data(&absolute, upper);
    if data.len() < page {
        return Ok(Options { chdir: None, data });
    }
    let base = common_parent(layers);
    let relative: Vec<String> = layers
        .iter()
        .map(|l| escape(l.strip_prefix(&base).unwrap_or(l)))
        .collect();
    let data = join_data(&relative, upper);
    if data.len() < page {
        return Ok(Options {
            chdir: Some(base),
            data,
        });
    }
    Err(ContainerError::InvalidConfig {
        field: "rootfs.layers",
        value: format!("{} layers under {}", layers.len(), base.display()),
        why: "overlay options exceed one page even with paths relative to the common parent",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_list_layers_top_most_first_with_upper_and_work() {
        let layers = vec![PathBuf::from("/l/top"), PathBuf::from("/l/base")];
        let o = options(
            &layers,
            Some((Path::new("/p/upper"), Path::new("/p/work"))),
            4096,
        )
        .unwrap();
        assert_eq!(o.chdir, None);
        assert_eq!(
            o.data,
            "lowerdir=/l/top:/l/base,upperdir=/p/upper,workdir=/p/work"
        );
        let o = options(&layers[..1], None, 4096).unwrap();
        assert_eq!(o.data, "lowerdir=/l/top");
    }

    #[test]
    fn overlay_options_escape_separators_in_paths() {
        let layers = vec![PathBuf::from("/l/sha256:ab,c")];
        let o = options(&layers, None, 4096).unwrap();
        assert_eq!(o.data, "lowerdir=/l/sha256\\:ab\\,c");
    }

    #[test]
    fn long_lowerdir_becomes_relative_to_the_common_parent() {
        let base = format!("/var/lib/picolet/images/{}", "x".repeat(60));
        let layers: Vec<PathBuf> = (0..40)
            .map(|i| PathBuf::from(format!("{base}/layers/{i:064}/fs")))
            .collect();
        let o = options(&layers, None, 4096).unwrap();
        assert_eq!(o.chdir, Some(PathBuf::from(format!("{base}/layers"))));
        assert!(o.data.starts_with(&format!("lowerdir={:064}/fs:", 0)));
        assert!(o.data.len() < 4096);
    }

    #[test]
    fn too_many_layers_even_when_relative_is_a_config_error() {
        let layers: Vec<PathBuf> = (0..100)
            .map(|i| PathBuf::from(format!("/a{i}/{}", "y".repeat(60))))
            .collect();
        let err = options(&layers, None, 4096).unwrap_err();
        assert!(err.to_string().contains("exceed one page"), "{err}");
        assert!(options(&[], None, 4096).is_err());
        assert!(options(&[PathBuf::from("rel")], None, 4096).is_err());
    }
}
