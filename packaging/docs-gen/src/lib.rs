//! Man pages and shell completions generated from a binary's clap definition, for the Debian
//! packages. `packaging/build-debs.sh` runs `BIN generate-docs DIR` before `cargo deb`; each
//! binary answers that with [`generate_if_asked`], called before its own argument parsing, so the
//! command is not part of its clap definition and shows up in no help text, man page or
//! completion (clap_complete would list even a hidden subcommand). Output, for a binary `BIN`:
//!
//! ```text
//! DIR/man/BIN.1              the binary's page
//! DIR/man/BIN-SUB.1          one page per visible subcommand (none for hidden ones or `help`)
//! DIR/completions/BIN        bash   (installed as /usr/share/bash-completion/completions/BIN)
//! DIR/completions/_BIN       zsh    (/usr/share/zsh/vendor-completions/_BIN)
//! DIR/completions/BIN.fish   fish   (/usr/share/fish/vendor_completions.d/BIN.fish)
//! ```

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Command;
use clap_complete::Shell;

/// The first argument that asks for the docs: `BIN generate-docs DIR`.
pub const SUBCOMMAND: &str = "generate-docs";

/// When the process was started as `BIN generate-docs DIR`, writes the docs of `cmd()` into DIR
/// and returns the exit status for `main` to exit with (0, or 1 after printing the error);
/// otherwise returns `None` and the binary parses its arguments as usual.
pub fn generate_if_asked(cmd: impl FnOnce() -> Command) -> Option<i32> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let dir = requested_dir(&args)?;
    let cmd = cmd();
    let name = cmd.get_name().to_string();
    Some(match write_all(cmd, dir) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            0
        }
        Err(e) => {
            eprintln!("{name}: {e:#}");
            1
        }
    })
}

/// DIR when `args` (without the program name) are exactly `generate-docs DIR`.
fn requested_dir(args: &[OsString]) -> Option<&Path> {
    match args {
        [sub, dir] if sub == SUBCOMMAND => Some(Path::new(dir)),
        _ => None,
    }
}

/// Writes the man pages and completions of `cmd` into `dir` (created if missing) and returns the
/// paths written.
pub fn write_all(mut cmd: Command, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();

    let man = dir.join("man");
    fs::create_dir_all(&man).with_context(|| format!("cannot create {}", man.display()))?;
    let name = cmd.get_name().to_string();
    // Pages without clap's `help` subcommand (its page would only repeat --help); the
    // completions below keep it, since the binary accepts it.
    let mut for_man = cmd.clone().disable_help_subcommand(true);
    // build() fills in what the generators read: subcommand names, help and version flags.
    for_man.build();
    written.push(write_page(&for_man, &man)?);
    for sub in for_man.get_subcommands() {
        // build() named each subcommand `BIN-SUB` (its display name), so its page is
        // `man BIN-SUB`, as `man git-commit` is; the SUBCOMMANDS section refers to those.
        if !sub.is_hide_set() {
            written.push(write_page(sub, &man)?);
        }
    }

    let comp = dir.join("completions");
    fs::create_dir_all(&comp).with_context(|| format!("cannot create {}", comp.display()))?;
    for (shell, file) in [
        (Shell::Bash, name.clone()),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd, &name, &mut out);
        let path = comp.join(file);
        fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

fn write_page(cmd: &Command, dir: &Path) -> Result<PathBuf> {
    let page = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    page.render(&mut out)
        .with_context(|| format!("cannot render the man page of {}", cmd.get_name()))?;
    let path = dir.join(page.get_filename());
    fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn demo() -> Command {
        Command::new("demo")
            .about("A demo tool")
            .arg(
                Arg::new("verbose")
                    .long("verbose")
                    .action(ArgAction::SetTrue),
            )
            .subcommand(Command::new("run").about("Run it"))
            .subcommand(Command::new("secret").hide(true))
    }

    #[test]
    fn only_the_exact_form_asks_for_docs() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            requested_dir(&args(&["generate-docs", "out"])),
            Some(Path::new("out"))
        );
        assert_eq!(requested_dir(&args(&["generate-docs"])), None);
        assert_eq!(requested_dir(&args(&["generate-docs", "a", "b"])), None);
        assert_eq!(requested_dir(&args(&["serve", "generate-docs"])), None);
        assert_eq!(requested_dir(&args(&[])), None);
    }

    #[test]
    fn writes_pages_and_completions_and_no_page_for_hidden_subcommands() {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = write_all(demo(), dir.path()).expect("write_all");
        let names: Vec<String> = written
            .iter()
            .map(|p| {
                p.strip_prefix(dir.path())
                    .unwrap_or(p)
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            [
                "man/demo.1",
                "man/demo-run.1",
                "completions/demo",
                "completions/_demo",
                "completions/demo.fish"
            ]
        );
        let page = fs::read_to_string(dir.path().join("man/demo.1")).expect("page");
        assert!(page.contains(".TH demo 1"), "{page}");
        assert!(page.contains("\\-\\-verbose"), "{page}");
        assert!(page.contains("demo\\-run(1)"), "{page}");
        assert!(!page.contains("demo\\-help"), "{page}");
        let sub = fs::read_to_string(dir.path().join("man/demo-run.1")).expect("sub page");
        assert!(sub.contains(".TH demo-run 1"), "{sub}");
        // (Completions do list hidden subcommands: clap_complete includes them.)
        for f in written
            .iter()
            .filter(|f| f.extension() == Some("1".as_ref()))
        {
            let text = fs::read_to_string(f).expect("read");
            assert!(
                !text.contains("secret"),
                "{} mentions a hidden subcommand",
                f.display()
            );
        }
        let bash = fs::read_to_string(dir.path().join("completions/demo")).expect("bash");
        assert!(bash.contains("complete -F"), "{bash}");
        assert!(bash.contains("demo,run)"), "{bash}");
        assert!(bash.contains("demo,help)"), "{bash}");
    }
}
