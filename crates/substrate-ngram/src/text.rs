//! Text as CCNet's language model sees it: each line normalised (lower case, accents off, digits
//! as `0`, typographic punctuation as ASCII, invisible characters dropped), then cut into words.
//! The normaliser follows CCNet's steps, not its code: it drops every combining mark (CCNet only
//! the nonspacing ones, so scripts whose vowels are spacing marks lose more here), writes every
//! numeric character as `0` (CCNet only decimal digits), and keeps a tab as white space.
//!
//! CCNet cuts the normalised line with a SentencePiece model trained on the same Wikipedia. Here
//! the cut is by words instead: a word is a run of letters and digits, and every other visible
//! character is a token of its own (`don't` is `don ' t`). It needs no second model trained
//! and shipped beside the n-gram model, and any other tool splitting on spaces (KenLM, NLTK)
//! sees the same tokens. The cost is unknown words: a word the reference never saw is `<unk>`,
//! where SentencePiece would have spelled it in known pieces. The audit counts them per register.

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// One line normalised the way CCNet normalises before scoring: trimmed, lower-cased, accents
/// taken off (decomposed, combining marks dropped), every numeric character written `0`,
/// typographic punctuation written as its ASCII form, and control and format characters dropped.
pub fn normalize(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.trim().nfd() {
        if is_combining_mark(c) || invisible(c) {
            continue;
        }
        if c.is_numeric() {
            out.push('0');
            continue;
        }
        match ascii_punctuation(c) {
            Some(ascii) => out.push_str(ascii),
            None => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// The tokens of a normalised line: runs of letters and digits, and every other character that
/// is not white space on its own.
pub fn words(normalized: &str) -> Words<'_> {
    Words { rest: normalized }
}

/// The tokens of a raw line: [`normalize`] then [`words`].
pub fn tokens(line: &str) -> Vec<String> {
    words(&normalize(line)).map(str::to_owned).collect()
}

/// The iterator [`words`] returns.
#[derive(Clone, Debug)]
pub struct Words<'a> {
    rest: &'a str,
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let start = self.rest.find(|c: char| !c.is_whitespace())?;
        let rest = &self.rest[start..];
        let first = rest.chars().next()?;
        let end = match first.is_alphanumeric() {
            true => rest.find(|c: char| !c.is_alphanumeric()).unwrap_or(rest.len()),
            false => first.len_utf8(),
        };
        self.rest = &rest[end..];
        Some(&rest[..end])
    }
}

/// Control characters and the invisible format characters (zero-width spaces and joiners,
/// direction marks, the byte-order mark, the soft hyphen). Tabs and line breaks are white space.
fn invisible(c: char) -> bool {
    (c.is_control() && !c.is_whitespace())
        || matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}')
}

/// The ASCII form of typographic and full-width punctuation.
fn ascii_punctuation(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}' | '\u{2032}' | '`' | '\u{00B4}' => "'",
        '\u{201C}' | '\u{201D}' | '\u{201E}' | '\u{201F}' | '\u{00AB}' | '\u{00BB}' | '\u{2033}'
        | '\u{300A}' | '\u{300B}' | '\u{300C}' | '\u{300D}' | '\u{300E}' | '\u{300F}' => "\"",
        '\u{2010}'..='\u{2015}' | '\u{2212}' => "-",
        '\u{2026}' => "...",
        '\u{3001}' => ",",
        '\u{3002}' => ".",
        '\u{00A0}' | '\u{2000}'..='\u{200A}' | '\u{3000}' => " ",
        // Full-width forms of ASCII punctuation, U+FF01 to U+FF5E, sit 0xFEE0 above it.
        '\u{FF01}'..='\u{FF5E}' => {
            let ascii = (c as u32 - 0xFEE0) as u8;
            match ascii.is_ascii_punctuation() {
                true => ASCII_PUNCTUATION[usize::from(ascii - b'!')],
                false => return None,
            }
        }
        _ => return None,
    })
}

/// `!` to `~`, each as a string, for the full-width forms.
const ASCII_PUNCTUATION: [&str; 94] = [
    "!", "\"", "#", "$", "%", "&", "'", "(", ")", "*", "+", ",", "-", ".", "/", "0", "1", "2", "3", "4", "5",
    "6", "7", "8", "9", ":", ";", "<", "=", ">", "?", "@", "A", "B", "C", "D", "E", "F", "G", "H", "I", "J",
    "K", "L", "M", "N", "O", "P", "Q", "R", "S", "T", "U", "V", "W", "X", "Y", "Z", "[", "\\", "]", "^", "_",
    "`", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s", "t",
    "u", "v", "w", "x", "y", "z", "{", "|", "}", "~",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_as_ccnet_does_before_its_tokeniser() {
        assert_eq!(normalize("  Café au LAIT, 1984!  "), "cafe au lait, 0000!");
        assert_eq!(
            normalize("\u{201C}Don\u{2019}t\u{201D} \u{2014} she said\u{2026}"),
            "\"don't\" - she said..."
        );
        assert_eq!(normalize("zero\u{200B}width\u{00AD}soft"), "zerowidthsoft");
        assert_eq!(normalize("\u{FF08}\u{FF01}\u{FF09}\u{3002}"), "(!).");
        assert_eq!(normalize("Ünïcödé ÀÉÎ"), "unicode aei");
        assert_eq!(normalize(""), "");
    }

    #[test]
    fn words_are_runs_of_letters_and_digits_and_single_marks() {
        let got: Vec<&str> = words("don't stop, 00 times...  x").collect();
        assert_eq!(got, ["don", "'", "t", "stop", ",", "00", "times", ".", ".", ".", "x"]);
        assert_eq!(words("   ").count(), 0);
        assert_eq!(tokens("Σοφία λέει: «γεια»"), ["σοφια", "λεει", ":", "\"", "γεια", "\""]);
    }
}
