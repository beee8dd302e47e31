// PLACEHOLDER until helper delivers
#[derive(serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComposeMode {
    #[serde(rename = "subject")]
    Subject,
    #[serde(rename = "body")]
    Body,
    #[serde(rename = "subject+body")]
    SubjectBody,
}
pub fn compose(raw: &[u8], _mode: ComposeMode) -> String {
    let s = String::from_utf8_lossy(raw);
    s.split("\r\n\r\n").nth(1).unwrap_or("").trim().to_string()
}
