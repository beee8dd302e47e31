// PLACEHOLDER until the simulated modem lands.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    pub latency_ms: u64,
    pub report_delay_ms: u64,
}
pub struct Sim {
    pub device: std::path::PathBuf,
}
pub async fn start(
    _name: &str,
    _config: SimConfig,
    _records: std::path::PathBuf,
    _shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<Sim> {
    Err(std::io::Error::other("no sim yet"))
}
