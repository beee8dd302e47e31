// PLACEHOLDER until helper delivers
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Turkish,
}
pub enum Encoding {
    Gsm7,
    Ucs2,
}
impl Encoding {
    pub fn as_str(&self) -> &'static str {
        match self {
            Encoding::Gsm7 => "gsm7",
            Encoding::Ucs2 => "ucs2",
        }
    }
}
pub struct Split {
    pub encoding: Encoding,
    pub parts: Vec<String>,
}
pub fn split(text: &str, _l: &[Language]) -> Split {
    let chars: Vec<char> = text.chars().collect();
    let parts = if chars.len() <= 160 {
        vec![text.to_string()]
    } else {
        chars.chunks(153).map(|c| c.iter().collect()).collect()
    };
    Split {
        encoding: Encoding::Gsm7,
        parts,
    }
}
