//! `mock-openrouter`: the tests' mock OpenRouter as a program, for demos and
//! benchmarks. Listens on 127.0.0.1 (`PORT`, default 8787; 0 picks a free port).
//! Point the proxy at it with `OPENROUTER_BASE_URL=http://127.0.0.1:8787/api/v1`.

use std::net::SocketAddr;
use std::process::ExitCode;

use llm_proxy_tests::MockOpenRouter;

#[tokio::main]
async fn main() -> ExitCode {
    let port = match std::env::var("PORT").ok().filter(|p| !p.is_empty()) {
        None => 8787,
        Some(p) => match p.parse::<u16>() {
            Ok(port) => port,
            Err(_) => {
                #[expect(clippy::print_stderr, reason = "start-up failure")]
                {
                    eprintln!("mock-openrouter: PORT={p:?} is not a port number");
                }
                return ExitCode::from(2);
            }
        },
    };
    let mock = match MockOpenRouter::start_on(SocketAddr::from(([127, 0, 0, 1], port))).await {
        Ok(mock) => mock,
        Err(e) => {
            #[expect(clippy::print_stderr, reason = "start-up failure")]
            {
                eprintln!("mock-openrouter: cannot listen on 127.0.0.1:{port}: {e}");
            }
            return ExitCode::from(2);
        }
    };
    #[expect(clippy::print_stdout, reason = "tells the user where it listens")]
    {
        println!(
            "mock OpenRouter listening on http://{} (base URL {})",
            mock.addr(),
            mock.base_url()
        );
    }
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
