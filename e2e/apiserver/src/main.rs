//! `apiserver-emulator`: serves the emulated API on 127.0.0.1 and prints a kubeconfig for it.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let address = std::env::args().nth(1).map(|a| a.parse().expect("an address such as 127.0.0.1:6443"));
    let emulator = apiserver_emulator::Emulator::start(address).await?;
    print!("{}", emulator.kubeconfig());
    eprintln!("serving the Kubernetes API emulator on {}; Ctrl-C stops it", emulator.url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
