//! `substrate sandbox`: what this kernel offers a job's sandbox, proven by running one job in it.

use anyhow::Context;
use substrate_jobs::{Kernel, Network, Sandbox, Strength};

pub fn check(without_network_namespace: bool, without_scopes: bool) -> anyhow::Result<()> {
    let kernel = Kernel::probe();
    let yes_no = |offered: bool| if offered { "yes" } else { "no" };
    println!("this kernel offers a job's sandbox:");
    match kernel.landlock_abi {
        0 => println!("  Landlock (files):            no"),
        abi => println!("  Landlock (files):            ABI {abi}"),
    }
    println!("  Landlock scopes (signals):   {}", yes_no(kernel.landlock_abi >= 6));
    println!("  seccomp filters:             {}", yes_no(kernel.seccomp));
    println!(
        "  network namespace:           {}",
        match kernel.network_namespace {
            Some(flags) if flags & libc::CLONE_NEWUSER != 0 => "yes (in a user namespace)",
            Some(_) => "yes",
            None => "no",
        }
    );
    let strength = Strength { network_namespace: !without_network_namespace, scoped: !without_scopes };
    let program = std::env::current_exe().context("locating the substrate binary")?;
    let output = tempfile::tempdir().context("making a directory for the job's output")?;
    let report = Sandbox::new(&program, output.path()).arg("--version").strength(strength).run()?;
    anyhow::ensure!(
        report.succeeded(),
        "a confined `substrate --version` {}: {}",
        report.ended,
        String::from_utf8_lossy(&report.stderr)
    );
    let network = match report.isolation.network {
        Network::Namespace => "an empty network namespace and no sockets",
        Network::SocketFilter => "no sockets (the host's network namespace: the weaker guarantee)",
    };
    println!(
        "jobs run here: a confined `substrate --version` started in {:.1} ms and exited in {:.1} ms \
         (Landlock ABI {}, {network}, signals {})",
        report.startup.as_secs_f64() * 1e3,
        report.wall.as_secs_f64() * 1e3,
        report.isolation.landlock_abi,
        if report.isolation.scoped { "scoped to the sandbox" } else { "not scoped (the weaker guarantee)" },
    );
    Ok(())
}
