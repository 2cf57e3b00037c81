//! Starting stud the way a service manager does with socket activation: the listening socket as
//! descriptor 3, and `LISTEN_PID`, `LISTEN_FDS`, `LISTEN_FDNAMES` naming it.

use std::net::TcpListener;
use std::os::fd::AsRawFd as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;

/// A command that runs `bin args…` through `sh`, with `listener` as descriptor 3 and the
/// variables systemd sets (`LISTEN_PID` is the shell's pid, which `exec` keeps for stud).
pub fn socket_activated(bin: &Path, listener: &TcpListener, args: &[String]) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(r#"LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=https exec "$0" "$@""#)
        .arg(bin)
        .args(args);
    let fd = listener.as_raw_fd();
    // SAFETY: dup2 and fcntl are async-signal-safe; they put the listener at descriptor 3
    // without close-on-exec, in the child only. (dup2 onto itself would keep close-on-exec.)
    #[expect(unsafe_code, reason = "a libc call std does not offer; see SAFETY")]
    unsafe {
        command.pre_exec(move || {
            let rc = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if rc == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}
