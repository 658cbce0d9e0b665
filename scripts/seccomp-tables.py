#!/usr/bin/env python3
"""Prints src/runtime/seccomp/tables.rs's tables (after its header).

containerd's default seccomp profile (contrib/seccomp/seccomp_default.go)
as syscall numbers per architecture, from the kernel UAPI headers of
Debian 12: linux-libc-dev (x86_64), linux-libc-dev-arm64-cross and
linux-libc-dev-armhf-cross. ARM's private syscalls (0x0f0000 + n) are
written as 0xF000 | n. Usage: scripts/seccomp-tables.py > /tmp/t.rs
"""
import re
import subprocess

BASE = """accept accept4 access adjtimex alarm bind brk capget capset chdir chmod
chown chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64
clock_gettime clock_gettime64 clock_nanosleep clock_nanosleep_time64 close
close_range connect copy_file_range creat dup dup2 dup3 epoll_create
epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat
faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod
fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr
flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64
fsync ftruncate ftruncate64 futex futex_time64 futex_waitv futimesat getcpu
getcwd getdents getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32
getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid getppid
getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit
get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid
gettimeofday getuid getuid32 getxattr inotify_add_watch inotify_init
inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents
io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit
io_uring_enter io_uring_register io_uring_setup ipc kill landlock_add_rule
landlock_create_ruleset landlock_restrict_self lchown lchown32 lgetxattr link
linkat listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat
lstat64 madvise membarrier memfd_create memfd_secret mincore mkdir mkdirat
mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr
mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock
munlockall munmap nanosleep newfstatat _newselect open openat openat2 pause
pidfd_open pidfd_send_signal pipe pipe2 poll ppoll ppoll_time64 prctl pread64
preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64
pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom
recvmmsg recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat
renameat2 restart_syscall rmdir rseq rt_sigaction rt_sigpending
rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend rt_sigtimedwait
rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr
sched_getparam sched_get_priority_max sched_get_priority_min
sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64
sched_setaffinity sched_setattr sched_setparam sched_setscheduler sched_yield
seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile
sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32
setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority setregid
setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32
setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address
setuid setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack
signalfd signalfd4 sigprocmask sigreturn socket socketcall socketpair splice
stat stat64 statfs statfs64 statx symlink symlinkat sync sync_file_range
syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun
timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create
timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times
tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime
utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write
writev ptrace""".split()
ARM = "arm_fadvise64_64 arm_sync_file_range sync_file_range2 breakpoint cacheflush set_tls".split()
EXTRA = {"x86_64": "arch_prctl modify_ldt".split(), "aarch64": ARM, "arm": ARM}
CAPS = [
    (2, "open_by_handle_at"),
    (21, "bpf fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount "
         "mount_setattr move_mount name_to_handle_at open_tree perf_event_open quotactl "
         "quotactl_fd setdomainname sethostname setns syslog umount umount2 unshare"),
    (22, "reboot"), (18, "chroot"), (16, "delete_module init_module finit_module"),
    (20, "acct"),
    (19, "kcmp pidfd_getfd process_madvise process_vm_readv process_vm_writev ptrace"),
    (17, "iopl ioperm"), (25, "settimeofday stime clock_settime clock_settime64"),
    (26, "vhangup"), (34, "syslog"), (39, "bpf"), (38, "perf_event_open"),
]
HEADERS = {
    "x86_64": ["-I/usr/include/x86_64-linux-gnu", "-D__x86_64__"],
    "aarch64": ["-I/usr/aarch64-linux-gnu/include", "-D__aarch64__", "-D__BITS_PER_LONG=64"],
    "arm": ["-I/usr/arm-linux-gnueabihf/include", "-D__arm__", "-D__ARM_EABI__",
            "-D__BITS_PER_LONG=32"],
}
AUDIT = {"x86_64": "0xC000_003E", "aarch64": "0xC000_00B7", "arm": "0x4000_0028"}
CFG = {
    "x86_64": 'any(test, target_arch = "x86_64")',
    "aarch64": 'any(test, target_arch = "aarch64", target_arch = "arm")',
    "arm": 'any(test, target_arch = "aarch64", target_arch = "arm")',
}


def numbers(args):
    dm = subprocess.run(["cpp", "-dM"] + args, input="#include <asm/unistd.h>\n",
                        capture_output=True, text=True, check=True).stdout
    names = sorted({m.group(1) for m in re.finditer(r"#define __(?:ARM_)?NR_(\w+)", dm)})
    src = "#include <asm/unistd.h>\n" + "".join(
        f"@@{n} __NR_{n}\n@@{n} __ARM_NR_{n}\n" for n in names)
    out = subprocess.run(["cpp", "-P"] + args, input=src, capture_output=True,
                         text=True, check=True).stdout
    res = {}
    for line in out.splitlines():
        if not line.startswith("@@"):
            continue
        n, e = line[2:].split(" ", 1)
        if "__NR" in e or n in res:
            continue
        try:
            v = eval(e.replace("UL", "").replace("U", ""))  # integer expressions only
        except Exception:
            continue
        if isinstance(v, int):
            res[n] = v
    return res


def rows(xs, per):
    return "\n".join("        " + ", ".join(xs[i:i + per]) + ","
                     for i in range(0, len(xs), per))


for arch in ["x86_64", "aarch64", "arm"]:
    nums = numbers(HEADERS[arch])

    def nr(name):
        v = nums.get(name)
        if v is None:
            return None
        return 0xF000 | (v - 0x0F0000) if v >= 0x0F0000 else v

    base = sorted({nr(x) for x in BASE + EXTRA[arch] if nr(x) is not None})
    caps = sorted({(nr(x), c) for c, xs in CAPS for x in xs.split() if nr(x) is not None})
    print(f"""#[cfg({CFG[arch]})]
pub(crate) static {arch.upper()}: Arch = Arch {{
    audit: {AUDIT[arch]},
    x32: {"true" if arch == "x86_64" else "false"},
    clone: {nr("clone")},
    clone3: {nr("clone3")},
    personality: {nr("personality")},
    base: &[
{rows([str(x) for x in base], 16)}
    ],
    caps: &[
{rows([f"({n}, {c})" for n, c in caps], 8)}
    ],
}};
""")
