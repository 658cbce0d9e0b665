//! Rootfs, mounts and /dev of a new container.

use super::*;

#[test]
fn writes_to_the_root_land_in_the_upper_dir() {
    let Some(fx) = fixture("upper") else { return };
    let out = run(
        &pod(false),
        &config(&fx, "echo hi > /newfile && cat /newfile"),
    );
    assert_eq!(out, "exit 0\nhi\n");
    assert_eq!(
        fs::read_to_string(fx.upper().join("newfile")).unwrap(),
        "hi\n"
    );
    assert!(!fx.layer().join("newfile").exists());
}

#[test]
fn read_only_root_filesystem_refuses_writes_but_mounts_still_work() {
    let Some(fx) = fixture("read_only") else {
        return;
    };
    let script = "echo x > /newfile || echo refused; echo y > /scratch/f && cat /scratch/f; touch /tmp/t || echo tmp-refused";
    let mut cfg = config(&fx, script);
    cfg.rootfs.upper = None;
    cfg.mounts.push(Mount {
        destination: "/scratch".into(),
        kind: MountKind::Tmpfs { size: 1 << 20 },
        read_only: false,
    });
    let out = run(&pod(false), &cfg);
    assert!(out.starts_with("exit 0\n"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(
        out.contains("refused\ny\n") && out.contains("tmp-refused"),
        "{out}"
    );
    assert!(!fx.layer().join("proc").exists() && !fx.layer().join("scratch").exists());
}

#[test]
fn bind_and_tmpfs_mounts_appear_at_their_destinations() {
    let Some(fx) = fixture("mounts") else { return };
    let data = fx.host("data");
    fs::create_dir_all(&data).unwrap();
    fs::write(data.join("data.txt"), "from-host\n").unwrap();
    fs::write(fx.host("app.conf"), "conf\n").unwrap();
    let script = "cat /data/data.txt; echo w > /data/new; cat /etc/app.conf; \
        (echo z > /ro/x) 2>/dev/null && echo ro-writable || echo ro-refused; \
        grep ' /mem ' /proc/mounts | cut -d' ' -f3,4";
    let mut cfg = config(&fx, script);
    let bind = |dest: &str, source: PathBuf, read_only| Mount {
        destination: dest.into(),
        kind: MountKind::Bind { source },
        read_only,
    };
    cfg.mounts = vec![
        bind("/data", data.clone(), false),
        bind("/etc/app.conf", fx.host("app.conf"), false),
        bind("/ro", data.clone(), true),
        Mount {
            destination: "/mem".into(),
            kind: MountKind::Tmpfs { size: 1 << 20 },
            read_only: false,
        },
    ];
    let out = run(&pod(false), &cfg);
    assert_eq!(
        out,
        "exit 0\nfrom-host\nconf\nro-refused\ntmpfs rw,nosuid,nodev,relatime,size=1024k\n"
    );
    assert_eq!(fs::read_to_string(data.join("new")).unwrap(), "w\n");
    assert!(
        fx.upper().join("etc/app.conf").is_file(),
        "file mount point created in the upper dir"
    );
}

#[test]
fn mount_destinations_cannot_escape_the_rootfs_through_image_symlinks() {
    let Some(fx) = fixture("escape") else { return };
    let name = format!("picolet-escape-{}", std::process::id());
    let mut cfg = config(
        &fx,
        &format!("ls /{name}; grep -c ' /{name}2 ' /proc/mounts"),
    );
    fs::write(fx.host("secret"), "x").unwrap();
    cfg.mounts = vec![
        Mount {
            destination: format!("/evil/{name}"),
            kind: MountKind::Bind {
                source: fx.dir.path().to_path_buf(),
            },
            read_only: true,
        },
        Mount {
            destination: format!("/up/../{name}2"),
            kind: MountKind::Tmpfs { size: 0 },
            read_only: false,
        },
    ];
    let out = run(&pod(false), &cfg);
    assert!(
        out.starts_with("exit 0\n") && out.contains("secret\n") && out.ends_with("1\n"),
        "{out}"
    );
    assert!(
        !Path::new("/").join(&name).exists() && !Path::new("/").join(format!("{name}2")).exists()
    );
    assert!(fx.upper().join(&name).is_dir());
}

#[test]
fn container_gets_dev_nodes_env_and_a_created_working_directory() {
    let Some(fx) = fixture("dev") else { return };
    let script = "pwd; echo $GREETING; echo x > /dev/null && head -c 4 /dev/zero | wc -c; \
        for l in ptmx fd stderr; do readlink /dev/$l; done; test -c /dev/urandom && test -c /dev/tty && echo chars; \
        awk '$2 ~ /^\\/dev/ {print $2, $3}' /proc/mounts; umask";
    let mut cfg = config(&fx, script);
    cfg.cwd = "/work/here".into();
    let out = run(&pod(false), &cfg);
    assert_eq!(
        out,
        "exit 0\n/work/here\nhello\n4\npts/ptmx\n/proc/self/fd\n/proc/self/fd/2\nchars\n\
         /dev tmpfs\n/dev/pts devpts\n/dev/shm tmpfs\n/dev/mqueue mqueue\n0022\n"
    );
}

#[test]
fn many_long_layer_paths_are_mounted_relative_to_their_common_parent() {
    let Some(fx) = fixture("many_layers") else {
        return;
    };
    let mut cfg = config(&fx, "cat /top; ls /bin/busybox");
    let mut layers = Vec::new();
    for i in 0..40 {
        let layer = fx.host("layers").join(format!("{i:03}-{}", "l".repeat(80)));
        fs::create_dir_all(&layer).unwrap();
        fs::write(layer.join("top"), format!("{i}\n")).unwrap();
        layers.push(layer);
    }
    layers.push(fx.layer());
    let absolute: usize = layers.iter().map(|l| l.as_os_str().len() + 1).sum();
    assert!(
        absolute > 4096,
        "the test needs a lowerdir longer than a page"
    );
    cfg.rootfs.layers = layers;
    let out = run(&pod(false), &cfg);
    assert_eq!(out, "exit 0\n0\n/bin/busybox\n");
}
