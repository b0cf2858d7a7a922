//! `bench sandbox`: what confining a job costs, against starting it plain.

use super::*;

/// Starts `substrate --version` `runs` times plain and `runs` times confined, alternating.
pub(super) fn bench_sandbox(
    runs: usize,
    embed: Option<&std::path::Path>,
    models: &crate::cli::ModelArgs,
) -> anyhow::Result<()> {
    anyhow::ensure!(runs > 0, "--runs must be at least 1");
    let program = std::env::current_exe().context("locating the substrate binary")?;
    let output = tempfile::tempdir()?;
    let (mut plain, mut confined, mut startup, mut cpu) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let started = Instant::now();
        let status = Command::new(&program).arg("--version").stdout(Stdio::null()).status()?;
        plain.push(started.elapsed());
        anyhow::ensure!(status.success(), "substrate --version failed: {status}");
        let started = Instant::now();
        let report = substrate_jobs::Sandbox::new(&program, output.path()).arg("--version").run()?;
        confined.push(started.elapsed());
        anyhow::ensure!(report.succeeded(), "the confined substrate --version {}", report.ended);
        startup.push(report.startup);
        cpu.push(report.cpu);
    }
    let show = |name: &str, times: &mut Vec<Duration>| {
        times.sort();
        let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
        println!(
            "  {name:<44} min {:.2} ms, median {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            at(0.0),
            at(0.5),
            at(0.99),
            at(1.0)
        );
    };
    println!("a job that exits at once (`substrate --version`), {runs} runs each:");
    show("plain spawn to exit", &mut plain);
    show("confined: Sandbox::run, call to exit", &mut confined);
    show("confined: spawn to exec done (target 20 ms)", &mut startup);
    show("confined: the job's own CPU time", &mut cpu);
    if let Some(texts) = embed {
        bench_sandboxed_embedding(&program, texts, models)?;
    }
    Ok(())
}

/// `substrate embed` over `texts`, five times plain and five times confined, alternating; the
/// confined one may read only the model's directory and the texts.
fn bench_sandboxed_embedding(
    program: &std::path::Path,
    texts: &std::path::Path,
    models: &crate::cli::ModelArgs,
) -> anyhow::Result<()> {
    let models_dir = models.models_dir.clone().unwrap_or_else(|| models.data.data_dir.join("models"));
    let model = models_dir.join("all-MiniLM-L6-v2");
    anyhow::ensure!(model.is_dir(), "no model at {}; run `substrate models fetch` first", model.display());
    let args = ["embed", "--model"];
    let output = tempfile::tempdir()?;
    let (mut plain, mut confined) = (Vec::new(), Vec::new());
    let mut vectors = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let started = Instant::now();
        let out = Command::new(program).args(args).arg(&model).stdin(std::fs::File::open(texts)?).output()?;
        plain.push(started.elapsed());
        anyhow::ensure!(
            out.status.success(),
            "substrate embed failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        vectors.0 = out.stdout;
        let started = Instant::now();
        let report = substrate_jobs::Sandbox::new(program, output.path())
            .args(args)
            .arg(&model)
            .input(&model)
            .stdin(texts)
            .run()?;
        confined.push(started.elapsed());
        anyhow::ensure!(
            report.succeeded(),
            "the confined embed {}: {}",
            report.ended,
            String::from_utf8_lossy(&report.stderr)
        );
        vectors.1 = report.stdout;
    }
    // The sandbox keeps the first MiB of a job's stdout (a job's results go to its output
    // directory); that much must be the same.
    let compared = vectors.1.len();
    anyhow::ensure!(
        compared > 0 && vectors.0.get(..compared) == Some(&vectors.1[..]),
        "the confined embedding gave other vectors than the plain one"
    );
    plain.sort();
    confined.sort();
    let lines = std::fs::read_to_string(texts)?.lines().count();
    let (p, c) = (plain[2].as_secs_f64(), confined[2].as_secs_f64());
    println!(
        "substrate embed, {lines} texts, 5 runs each: plain median {p:.3} s (min {:.3}, max {:.3}), confined median {c:.3} s (min {:.3}, max {:.3}): {:+.1}% (target: under 5%); the first {compared} bytes of vectors identical",
        plain[0].as_secs_f64(),
        plain[4].as_secs_f64(),
        confined[0].as_secs_f64(),
        confined[4].as_secs_f64(),
        (c / p - 1.0) * 100.0
    );
    Ok(())
}
