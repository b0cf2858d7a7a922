//! A test-only workload: each mode is one attack on the sandbox, or one piece of honest work.
//!
//! It says on stdout what it tried and what came of it, and exits 0 if the attack got through,
//! 3 if the kernel refused it (the tests check the world outside too, not only this report).

// fork, ptrace and kill are not wrapped by std.
#![allow(unsafe_code)]

use std::io::{Read, Write};
use std::process::ExitCode;

const GOT_THROUGH: u8 = 0;
const REFUSED: u8 = 3;
const USAGE: u8 = 2;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let outcome = match arg(0).as_str() {
        // Exits at once: the sandbox's own cost.
        "noop" => Ok("nothing".to_string()),
        // Honest work: reads an input, writes its length and checksum to the output directory,
        // on four threads.
        "work" => work(&arg(1)),
        "read" => std::fs::read(arg(1)).map(|bytes| {
            let _ = std::fs::write("stolen", &bytes);
            format!("read {} bytes: {}", bytes.len(), String::from_utf8_lossy(&bytes))
        }),
        "write" => std::fs::write(arg(1), b"written from the sandbox").map(|()| format!("wrote {}", arg(1))),
        "exec" => {
            std::process::Command::new(arg(1)).output().map(|out| format!("ran {}: {:?}", arg(1), out.status))
        }
        "connect" => std::net::TcpStream::connect(arg(1)).and_then(|mut stream| {
            stream.write_all(b"hello from the sandbox")?;
            Ok(format!("connected to {}", arg(1)))
        }),
        "fork-bomb" => fork_bomb(),
        "allocate" => allocate(arg(1).parse().unwrap_or(u64::MAX)),
        "spin" => loop {
            std::hint::spin_loop();
        },
        "sleep" => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        "ptrace-parent" => ptrace_parent(),
        "kill-parent" => kill_parent(),
        "unshare" => {
            // SAFETY: a plain system call.
            let result = unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) };
            if result == 0 {
                Ok("left for new namespaces".into())
            } else {
                Err(std::io::Error::last_os_error())
            }
        }
        "netns" => std::fs::read_link("/proc/self/ns/net").map(|link| link.display().to_string()),
        "env" => Ok(std::env::vars().map(|(key, value)| format!("{key}={value}\n")).collect()),
        other => {
            eprintln!("unknown mode '{other}'");
            return ExitCode::from(USAGE);
        }
    };
    match outcome {
        Ok(done) => {
            println!("got through: {done}");
            ExitCode::from(GOT_THROUGH)
        }
        Err(error) => {
            println!("refused: {error}");
            ExitCode::from(REFUSED)
        }
    }
}

fn work(input: &str) -> std::io::Result<String> {
    let mut text = Vec::new();
    std::fs::File::open(input)?.read_to_end(&mut text)?;
    let text = std::sync::Arc::new(text);
    let sums: Vec<u64> = (0..4)
        .map(|part| {
            let text = std::sync::Arc::clone(&text);
            std::thread::spawn(move || text.iter().skip(part).step_by(4).map(|&b| u64::from(b)).sum::<u64>())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|thread| thread.join().unwrap_or(0))
        .collect();
    let sum: u64 = sums.iter().sum();
    std::fs::create_dir_all("result")?;
    std::fs::write("result/summary", format!("{} {sum}\n", text.len()))?;
    Ok(format!("{} bytes, sum {sum}", text.len()))
}

fn fork_bomb() -> std::io::Result<String> {
    let mut forked = 0;
    let mut refused = None;
    for _ in 0..10_000 {
        // SAFETY: the child only loops on fork itself and never returns.
        match unsafe { libc::fork() } {
            -1 => {
                refused = Some(std::io::Error::last_os_error());
                break;
            }
            0 => loop {
                unsafe { libc::fork() };
            },
            _ => forked += 1,
        }
    }
    // std's own way to start a process (clone3, vfork, posix_spawn) must fail too.
    let spawned = std::process::Command::new("/proc/self/exe").arg("noop").status();
    match (forked, refused, spawned) {
        (0, Some(error), Err(_)) => Err(error),
        (forked, _, spawned) => Ok(format!("forked {forked} processes; std spawn: {spawned:?}")),
    }
}

fn allocate(bytes: u64) -> std::io::Result<String> {
    let chunk = 64 << 20;
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut total = 0u64;
    while total < bytes {
        let mut block = Vec::new();
        if block.try_reserve_exact(chunk).is_err() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::OutOfMemory,
                format!("allocation refused after {} MiB", total >> 20),
            ));
        }
        block.resize(chunk, 1);
        held.push(block);
        total += chunk as u64;
    }
    Ok(format!("allocated {} MiB", total >> 20))
}

fn ptrace_parent() -> std::io::Result<String> {
    // SAFETY: plain system calls; PTRACE_ATTACH takes no memory.
    let parent = unsafe { libc::getppid() };
    let attached = unsafe {
        libc::ptrace(
            libc::PTRACE_ATTACH,
            parent,
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    if attached == 0 {
        return Ok(format!("attached to {parent}"));
    }
    let error = std::io::Error::last_os_error();
    let mut byte = [0u8; 1];
    let local = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
    // Any address will do: the call itself must be refused.
    let remote = libc::iovec { iov_base: std::ptr::null_mut(), iov_len: 1 };
    // SAFETY: one byte into a local buffer.
    let read = unsafe { libc::process_vm_readv(parent, &local, 1, &remote, 1, 0) };
    if read >= 0 { Ok(format!("read the memory of {parent}")) } else { Err(error) }
}

fn kill_parent() -> std::io::Result<String> {
    // SAFETY: plain system calls.
    let parent = unsafe { libc::getppid() };
    if unsafe { libc::kill(parent, libc::SIGKILL) } == 0 {
        Ok(format!("killed {parent}"))
    } else {
        Err(std::io::Error::last_os_error())
    }
}
