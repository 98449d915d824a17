//! The texts of the fallback channel: one template per language and channel, filled
//! with the activation and the lead.

use std::collections::HashMap;

use gridcast_protocol::Level;
use gridcast_protocol::api::Channel;
use serde::Deserialize;

/// One language's templates.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Pair {
    sms: String,
    voice: String,
}

/// Templates by language (`--fallback-templates`, else the built-in ones).
#[derive(Debug, Clone)]
pub(crate) struct Templates(HashMap<String, Pair>);

/// Longest template accepted.
const MAX_TEMPLATE: usize = 1_000;

impl Default for Templates {
    fn default() -> Self {
        let pair = |sms: &str, voice: &str| Pair {
            sms: sms.into(),
            voice: voice.into(),
        };
        Self(HashMap::from([
            (
                "zh-CN".to_owned(),
                pair(
                    "{drill}【应急指挥】{level}级事件：{title}（{incident}）。{name}，请回复1接受，回复2无法前往。",
                    "{drill}您好，{name}。这里是应急指挥中心。{level}级事件：{title}。接受请按1，无法前往请按2。",
                ),
            ),
            (
                "en".to_owned(),
                pair(
                    "{drill}[Command center] Level {level}: {title} ({incident}). {name}, reply 1 to accept, 2 if you cannot go.",
                    "{drill}Hello {name}, this is the command center. Level {level}: {title}. Press 1 to accept, 2 if you cannot go.",
                ),
            ),
        ]))
    }
}

impl Templates {
    /// Reads a templates file: every language it names replaces the built-in one.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, String> {
        let given: HashMap<String, Pair> =
            serde_json::from_slice(bytes).map_err(|e| format!("templates: {e}"))?;
        let mut t = Self::default();
        for (lang, pair) in given {
            if pair.sms.is_empty() || pair.voice.is_empty() {
                return Err(format!(
                    "templates: {lang}: sms and voice must not be empty"
                ));
            }
            if pair.sms.chars().count() > MAX_TEMPLATE || pair.voice.chars().count() > MAX_TEMPLATE
            {
                return Err(format!(
                    "templates: {lang}: at most {MAX_TEMPLATE} characters each"
                ));
            }
            t.0.insert(lang, pair);
        }
        Ok(t)
    }

    /// The text for `lang` (else zh-CN) on `channel`.
    pub(crate) fn render(&self, lang: &str, channel: Channel, fill: &Fill<'_>) -> String {
        let Some(pair) = self.0.get(lang).or_else(|| self.0.get("zh-CN")) else {
            return fill.title.to_owned();
        };
        let template = match channel {
            Channel::Sms => &pair.sms,
            Channel::Voice => &pair.voice,
        };
        let drill = match (fill.drill, lang) {
            (false, _) => "",
            (true, "en") => "[DRILL] ",
            (true, _) => "【演练】",
        };
        template
            .replace("{drill}", drill)
            .replace("{level}", level_name(fill.level))
            .replace("{title}", fill.title)
            .replace("{incident}", fill.incident)
            .replace("{name}", fill.name)
    }
}

/// What a template is filled with.
pub(crate) struct Fill<'a> {
    pub(crate) level: Level,
    pub(crate) title: &'a str,
    pub(crate) incident: &'a str,
    pub(crate) name: &'a str,
    pub(crate) drill: bool,
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::I => "I",
        Level::II => "II",
        Level::III => "III",
        Level::IV => "IV",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_filled_in_the_lead_s_language() {
        let t = Templates::default();
        let fill = Fill {
            level: Level::I,
            title: "化工园区泄漏",
            incident: "INC-000001",
            name: "王芳",
            drill: true,
        };
        let zh = t.render("zh-CN", Channel::Sms, &fill);
        assert!(
            zh.starts_with("【演练】") && zh.contains("I级事件：化工园区泄漏"),
            "{zh}"
        );
        assert!(zh.contains("回复1接受"), "{zh}");
        let en = t.render("en", Channel::Voice, &fill);
        assert!(en.starts_with("[DRILL] Hello 王芳"), "{en}");
        let custom = Templates::parse(br#"{"en":{"sms":"{title}!","voice":"v"}}"#).unwrap();
        assert_eq!(custom.render("en", Channel::Sms, &fill), "化工园区泄漏!");
        assert!(Templates::parse(br#"{"en":{"sms":""}}"#).is_err());
    }
}
