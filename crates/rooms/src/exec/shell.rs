//! Shell commands as tools: a fixed argument vector from the config, run
//! without a shell, with an empty environment, in a fresh temporary
//! working directory, with the input on stdin, a timeout and an output
//! cap. The caller's input never becomes an argument.

use std::{process::Stdio, time::Duration};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    process::Command,
};
use tokio_util::sync::CancellationToken;

use super::config::ShellConfig;

/// How a run failed.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// The program could not be started.
    #[error("cannot start {program:?}: {source}; check the [[shell]] entry's argv")]
    Spawn {
        /// The program.
        program: String,
        /// The system's reason.
        source: std::io::Error,
    },
    /// It ran longer than its timeout (it was killed).
    #[error("{name} ran longer than {secs} s and was stopped")]
    Timeout {
        /// The command's name.
        name: String,
        /// The timeout.
        secs: u64,
    },
    /// It wrote more than the cap (it was killed).
    #[error("{name} wrote more than {cap} bytes and was stopped; raise max_output_bytes if that is expected")]
    OutputTooLarge {
        /// The command's name.
        name: String,
        /// The cap.
        cap: usize,
    },
    /// The caller canceled the run (it was killed).
    #[error("the run of {0} was canceled")]
    Canceled(String),
    /// Reading or writing its pipes failed.
    #[error("i/o with {name} failed: {source}")]
    Io {
        /// The command's name.
        name: String,
        /// The system's reason.
        source: std::io::Error,
    },
}

/// What a run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellOutput {
    /// The exit code (`None` if a signal ended it).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error (capped like stdout).
    pub stderr: Vec<u8>,
}

/// One configured command.
#[derive(Debug, Clone)]
pub struct ShellExecutor {
    config: ShellConfig,
}

async fn read_capped<R: AsyncRead + Unpin>(
    mut reader: R,
    cap: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = reader.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Some(out));
        }
        if out.len() + n > cap {
            return Ok(None);
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

impl ShellExecutor {
    /// From its configuration.
    pub fn new(config: ShellConfig) -> Self {
        Self { config }
    }

    /// The skill it offers: `shell.<name>`.
    pub fn skill_id(&self) -> String {
        format!("shell.{}", self.config.name)
    }

    /// Its configuration.
    pub fn config(&self) -> &ShellConfig {
        &self.config
    }

    /// Runs the command with `input` on stdin.
    pub async fn run(
        &self,
        input: &[u8],
        cancel: &CancellationToken,
    ) -> Result<ShellOutput, ShellError> {
        let name = self.config.name.clone();
        let io = |source| ShellError::Io {
            name: name.clone(),
            source,
        };
        let workdir = tempfile::tempdir().map_err(io)?;
        let mut child = Command::new(&self.config.argv[0])
            .args(&self.config.argv[1..])
            .env_clear()
            .current_dir(workdir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ShellError::Spawn {
                program: self.config.argv[0].clone(),
                source,
            })?;
        let mut stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let cap = self.config.max_output_bytes;
        let input = input.to_vec();
        let work = async {
            let write = async {
                // A program that exits without reading its input is fine.
                let _ = stdin.write_all(&input).await;
                drop(stdin);
            };
            let (_, out, err, status) = tokio::join!(
                write,
                read_capped(stdout, cap),
                read_capped(stderr, cap),
                child.wait()
            );
            (out, err, status)
        };
        let timeout = Duration::from_secs(self.config.timeout_secs);
        let (out, err, status) = tokio::select! {
            done = tokio::time::timeout(timeout, work) => match done {
                Ok(done) => done,
                Err(_) => return Err(ShellError::Timeout { name, secs: self.config.timeout_secs }),
            },
            _ = cancel.cancelled() => return Err(ShellError::Canceled(name)),
        };
        let (Some(stdout), Some(stderr)) = (out.map_err(io)?, err.map_err(io)?) else {
            return Err(ShellError::OutputTooLarge { name, cap });
        };
        let status = status.map_err(io)?;
        Ok(ShellOutput {
            code: status.code(),
            stdout,
            stderr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(argv: &[&str], timeout_secs: u64, cap: usize) -> ShellExecutor {
        ShellExecutor::new(ShellConfig {
            name: "t".into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            timeout_secs,
            max_output_bytes: cap,
            idempotent: true,
        })
    }

    #[tokio::test]
    async fn input_goes_to_stdin_and_the_environment_is_empty() {
        let never = CancellationToken::new();
        let out = shell(&["/usr/bin/wc", "-c"], 10, 1024)
            .run(b"twelve bytes", &never)
            .await
            .unwrap();
        assert_eq!(out.code, Some(0));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "12");

        std::env::set_var("CONCLAVE_SECRET_FOR_TEST", "leak");
        let out = shell(&["/usr/bin/env"], 10, 1024)
            .run(b"", &never)
            .await
            .unwrap();
        assert!(
            out.stdout.is_empty(),
            "env printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        );

        // A fresh, empty working directory that is not ours.
        let out = shell(&["/bin/pwd"], 10, 1024)
            .run(b"", &never)
            .await
            .unwrap();
        let dir = String::from_utf8(out.stdout).unwrap();
        assert_ne!(
            dir.trim(),
            std::env::current_dir().unwrap().to_str().unwrap()
        );
        let out = shell(&["/bin/ls", "-A"], 10, 1024)
            .run(b"", &never)
            .await
            .unwrap();
        assert!(out.stdout.is_empty());

        // Input with shell syntax stays data.
        let out = shell(&["/bin/cat"], 10, 1024)
            .run(b"$(touch x); rm -rf /", &never)
            .await
            .unwrap();
        assert_eq!(out.stdout, b"$(touch x); rm -rf /");
    }

    #[tokio::test]
    async fn timeouts_caps_cancellation_and_missing_programs_fail_cleanly() {
        let never = CancellationToken::new();
        let err = shell(&["/bin/sleep", "30"], 1, 1024)
            .run(b"", &never)
            .await
            .unwrap_err();
        assert!(matches!(err, ShellError::Timeout { secs: 1, .. }), "{err}");

        let err = shell(&["/usr/bin/yes"], 10, 4096)
            .run(b"", &never)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ShellError::OutputTooLarge { cap: 4096, .. }),
            "{err}"
        );

        let cancel = CancellationToken::new();
        let run = shell(&["/bin/sleep", "30"], 60, 1024);
        let canceler = cancel.clone();
        let started = std::time::Instant::now();
        let (result, _) = tokio::join!(run.run(b"", &cancel), async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            canceler.cancel();
        });
        assert!(matches!(result, Err(ShellError::Canceled(_))));
        assert!(started.elapsed() < Duration::from_secs(10));

        let err = shell(&["/nonexistent/tool"], 10, 1024)
            .run(b"", &never)
            .await
            .unwrap_err();
        assert!(matches!(err, ShellError::Spawn { .. }), "{err}");
        let out = shell(&["/bin/false"], 10, 1024)
            .run(b"", &never)
            .await
            .unwrap();
        assert_eq!(out.code, Some(1));
    }
}
