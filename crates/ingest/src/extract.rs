//! Reading numbers out of prose: a county's or township's work summary
//! (工作总结) with its numbers inside sentences ("完成白內障復明手術233例",
//! "辦理殘疾證548人,其中一級殘疾145人"). Driven by the catalog: each indicator's
//! name, aliases and `prose` phrases say what names it, its unit and
//! accepted units what a number of it is written in. Every mention carries
//! where it came from (character offsets, the sentence, the rule that
//! matched) and a confidence; only confident ones are `publish`, the rest go
//! to review. Pure: text in, mentions out.
//!
//! A value mention is a number the value grammar ([`crate::normalize_value`])
//! reads *with a unit*: dates (1月28日), ordinals (第二十七个) and bare numbers
//! are not mentions. Rates (每人每月50元, 每户300元) are not totals and are
//! skipped. A mention attaches to an indicator whose unit fits and whose
//! phrase is in the same sentence, the nearest one winning; a phrase in the
//! mention's own clause is stronger than one elsewhere in the sentence.
//! Words of assignment before it in the sentence (任务, 指标, 下达, 计划) make
//! it a quota, not an achievement. After 其中, a mention naming a category
//! (视力, 一级) is a breakdown of the indicator the sentence opened with.

use serde::Serialize;

use crate::catalog::{Catalog, Indicator};
use crate::fold::{fold, fold_char};
use crate::normalize_value::{is_cn_digit, is_magnitude, read};

/// What a mention reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MentionKind {
    /// Something done (完成, 发放, 办理 …).
    Achievement,
    /// Something assigned (任务, 下达的指标, 计划).
    Quota,
}

/// Whether a mention is published or waits for a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Confident: published like a form value, flagged `extracted`.
    Publish,
    /// Uncertain: held in the review queue.
    Review,
}

/// Confidence at or above which a mention is published.
pub const PUBLISH_AT: f64 = 0.9;

/// One value found in a document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mention {
    /// Catalog code.
    pub indicator: String,
    /// The indicator's official name.
    pub name: String,
    /// The value in the catalog unit (万元 → 元).
    pub value: f64,
    /// The unit as written after the number (万元, 名, 例).
    pub unit_raw: String,
    /// 多, 余, 近, 左右 …: the number is approximate.
    pub approx: bool,
    /// Achievement or quota.
    pub kind: MentionKind,
    /// Breakdown dimension, when the mention is a category of the indicator.
    pub dimension: Option<String>,
    /// Breakdown category.
    pub category: Option<String>,
    /// Character offset of the value's first character in the document text.
    pub start: usize,
    /// Character offset just after the value.
    pub end: usize,
    /// The value as written (`155.67萬元`).
    pub text: String,
    /// The sentence it stands in, as written.
    pub sentence: String,
    /// The rule that attached it to the indicator.
    pub rule: String,
    /// 0–1.
    pub confidence: f64,
    /// `publish` or `review`.
    pub decision: Decision,
}

/// Verbs that say a number was achieved (folded, simplified).
const VERBS: &[&str] = &[
    "完成", "实施", "发放", "办理", "资助", "培训", "慰问", "接待", "改造", "配发", "安装", "适配", "享受", "救助",
    "补助", "核发", "新增", "安置", "参加", "办结", "托养", "走访", "解决", "签约", "为",
];
/// Words before a count that say who an amount reached (惠及3210人, 受益人数为188人).
const BENEFICIARY_WORDS: &[&str] = &["惠及", "受益", "涉及", "覆盖"];
/// Words that make a number an assignment rather than an achievement.
const QUOTA_WORDS: &[&str] = &["任务", "指标", "下达", "目标", "分解"];
/// Words that make a number a need, a screening or an intention rather than
/// something done (筛查出…需求, 评估, 摸底调查, 就业意向): such a mention waits
/// for review.
const NEED_WORDS: &[&str] = &["筛查", "评估", "摸底", "调查", "意向", "需求", "申请"];
/// Words that say a sentence is about disabled persons; every indicator of
/// the catalog is, so a sentence without one (a women's federation's work in
/// the same summary) is doubtful.
const SUBJECT_WORDS: &[&str] = &[
    "残",
    "聋",
    "盲",
    "白内障",
    "轮椅",
    "假肢",
    "助听器",
    "辅具",
    "辅助器具",
    "托养",
    "康复",
];
/// Words of a heading that opens a section of plans (三、下一步工作打算,
/// 2022年下半年工作计划): what follows is intended, not done.
const PLAN_HEADING: &[&str] = &["计划", "打算", "安排", "思路", "设想", "要点"];
/// Words of a plan heading that say when (下半年工作安排, not 阳光家园计划).
const PLAN_WHEN: &[&str] = &[
    "下半年",
    "下一步",
    "下步",
    "明年",
    "来年",
    "今后",
    "工作计划",
    "工作安排",
    "工作打算",
];
/// Words in a value's clause that make it an intention (力争完成, 计划慰问200户).
const INTENT_WORDS: &[&str] = &["力争", "争取", "预计", "拟"];
/// Other organisations whose reports are bound into the same file (婦聯上半年工作匯報).
const OTHER_SUBJECTS: &[&str] = &["妇联", "妇女", "共青团", "团委", "工会", "老龄", "科协"];
/// Characters a heading has at most.
const HEADING_CHARS: usize = 40;
/// Confidence of a mention a need word, brackets or quotation marks make doubtful.
const DOUBTFUL: f64 = 0.6;
/// Words before a number in its clause that make it a rate, not a total.
const RATE_WORDS: &[&str] = &[
    "每人", "每户", "每月", "每年", "每例", "每名", "每辆", "人均", "户均", "标准",
];
/// Sentence ends.
/// (ASCII ! and ? are not: in mis-decoded text they stand inside sentences.)
const SENTENCE_END: &[char] = &['。', ';', '\n', '；'];
/// Clause ends inside a sentence (after folding full-width punctuation).
/// (、 lists items inside a clause: 视力残疾121人、听力残疾128人.)
const CLAUSE_END: &[char] = &[',', ':', '，', '：'];

/// A phrase of an indicator found in the folded text.
struct Phrase<'c> {
    indicator: &'c Indicator,
    start: usize,
    end: usize,
    /// Aliases of two characters or fewer (培训, 就业, 办结) name many things;
    /// `prose` phrases are chosen for running text and are never generic.
    generic: bool,
}

/// Every value mention of `text` that the catalog can hold.
pub fn extract(text: &str, catalog: &Catalog) -> Vec<Mention> {
    let chars: Vec<char> = text.chars().collect();
    // Folding is one character for one, so offsets in `folded` are offsets in `text`.
    let folded: Vec<char> = chars.iter().map(|&c| fold_char(c)).collect();
    // Bracket depth before each character; a line break closes what is open.
    let mut depth = Vec::with_capacity(folded.len());
    let mut d = 0usize;
    for &c in &folded {
        depth.push(d);
        match c {
            '(' | '（' | '[' | '【' => d += 1,
            ')' | '）' | ']' | '】' => d = d.saturating_sub(1),
            '\n' => d = 0,
            _ => {}
        }
    }
    let mut out = Vec::new();
    let mut p_start = 0;
    // What the last heading said: about disabled persons or another
    // organisation (None: no heading said); in a section of plans.
    let mut subject: Option<bool> = None;
    let mut planned = false;
    while p_start < folded.len() {
        let p_end = folded[p_start..]
            .iter()
            .position(|&c| c == '\n')
            .map_or(folded.len(), |p| p_start + p);
        let paragraph: String = folded[p_start..p_end].iter().collect();
        let mentions_subject = SUBJECT_WORDS.iter().any(|w| paragraph.contains(w));
        let line = paragraph.trim();
        // A heading: a short line that is not a sentence (no comma in it).
        if !line.is_empty() && line.chars().count() <= HEADING_CHARS && !line.contains([',', '，']) {
            if OTHER_SUBJECTS.iter().any(|w| line.contains(w)) {
                subject = Some(false);
            } else if mentions_subject {
                subject = Some(true);
            }
            // (A title of a summary and plans, 上半年工作总结和下半年工作安排, is
            // not a section of plans.)
            let plan = PLAN_HEADING.iter().any(|w| line.contains(w))
                && PLAN_WHEN.iter().any(|w| line.contains(w))
                && !line.contains("总结");
            // A top-level heading (二、…, 第三部分) ends a section of plans; a
            // sub-heading ((一)…, 1.…) stays inside it.
            let top = line
                .chars()
                .next()
                .is_some_and(|c| is_cn_digit(c) || c == '十' || c == '第')
                && line.chars().take(4).any(|c| c == '、');
            if plan {
                planned = true;
            } else if top || subject == Some(false) {
                planned = false;
            }
        }
        let on_subject = mentions_subject || subject == Some(true);
        // What the paragraph's earlier sentences named (the last two).
        let mut context: Vec<Vec<Phrase>> = vec![];
        let mut start = p_start;
        while start < p_end {
            let window_end = p_end.min(start + MAX_SENTENCE + 1);
            let mut end = folded[start..window_end]
                .iter()
                .position(|c| SENTENCE_END.contains(c))
                .map_or(window_end, |p| start + p + 1);
            // A run-on "sentence" is read in pieces cut at a clause end, so
            // that work stays linear in the document whatever it holds.
            if end - start > MAX_SENTENCE {
                let cut = start + MAX_SENTENCE;
                end = folded[start + 1..cut]
                    .iter()
                    .rposition(|c| CLAUSE_END.contains(c))
                    .map_or(cut, |p| start + 1 + p + 1);
            }
            let span = Span {
                s: start,
                e: end,
                on_subject,
                planned,
            };
            let named = sentence(&chars, &folded, &depth, span, catalog, &context, &mut out);
            context.push(named);
            if context.len() > 2 {
                context.remove(0);
            }
            start = end;
        }
        p_start = p_end + 1;
    }
    out
}

/// Characters read as one sentence at most.
const MAX_SENTENCE: usize = 400;

/// A sentence of the document, and whether its paragraph is about disabled persons.
#[derive(Clone, Copy)]
struct Span {
    s: usize,
    e: usize,
    on_subject: bool,
    /// Under a heading of plans (下半年工作安排).
    planned: bool,
}

/// Finds the sentence's mentions; returns the phrases it names (the context
/// of the paragraph's next sentences).
#[allow(clippy::too_many_arguments)]
fn sentence<'c>(
    chars: &[char],
    folded: &[char],
    depth: &[usize],
    span: Span,
    catalog: &'c Catalog,
    context: &[Vec<Phrase<'c>>],
    out: &mut Vec<Mention>,
) -> Vec<Phrase<'c>> {
    let Span {
        s,
        e,
        on_subject,
        planned,
    } = span;
    let text: String = folded[s..e].iter().collect();
    let phrases = phrases(&text, s, catalog);
    if !folded[s..e].iter().any(|c| c.is_ascii_digit() || is_numeral(*c)) {
        return phrases;
    }
    let sentence_raw: String = chars[s..e].iter().collect::<String>().trim().to_string();
    let qita = text.find("其中").map(|b| s + text[..b].chars().count());
    // A short lead before a colon names the sentence's topic (5、残疾人信访:…).
    let lead = folded[s..e.min(s + LEAD_CHARS)]
        .iter()
        .position(|c| *c == ':' || *c == '：')
        .map(|p| (s, s + p));
    // The indicator the sentence opened with, for 其中 breakdowns.
    // (The indicator, the kind of its value, and whether that value was published.)
    let mut head: Option<(&Indicator, MentionKind, bool)> = None;
    // One-off rates (每户300元, not 每人每月50元), for the sentence's arithmetic.
    let mut rates: Vec<(f64, usize)> = vec![];
    let first = out.len();
    let mut i = s;
    while i < e {
        let Some((len, reading)) = value_at(folded, i, e) else {
            i += 1;
            continue;
        };
        let (vs, ve) = (i, i + len);
        i = ve;
        let unit = reading.1;
        let clause = clause_bounds(folded, vs, ve, s, e);
        let before: String = folded[clause.0..vs].iter().collect();
        // 每户300元, and 各3000元 (each).
        if RATE_WORDS.iter().any(|w| before.contains(w)) || before.ends_with('各') {
            let per_time = ["每月", "每年", "月", "年"].iter().any(|w| before.contains(w));
            if unit == "元" && !per_time {
                rates.push((reading.0, vs));
            }
            continue;
        }
        let prefix: String = folded[s..vs].iter().collect();
        let clause_after: String = folded[ve..clause.1]
            .iter()
            .take_while(|c| !matches!(c, '(' | '（'))
            .collect();
        let own: String = folded[clause.0..clause.1].iter().collect();
        let quota_in_own = QUOTA_WORDS.iter().any(|w| own.contains(w));
        let quota_before = QUOTA_WORDS
            .iter()
            .any(|w| prefix.contains(w) || clause_after.contains(w));
        // 下达…任务120人,截至6月底已完成73人: what was done against the quota
        // named before, in a clause of its own that says 完成.
        let progress = quota_before && !quota_in_own && own.contains("完成");
        let kind = match quota_before && !progress {
            true => MentionKind::Quota,
            false => MentionKind::Achievement,
        };
        let in_brackets = depth[vs] > 0;
        // A slogan or a title in quotation marks ("康复一人", "为3000户…实施无障碍改造").
        let in_quotes = prefix.matches('“').count() > prefix.matches('”').count();
        // Need words in the mention's clause or the two before it.
        let clause_before = |at: usize| {
            if at <= s + 1 {
                return s;
            }
            folded[s..at - 1]
                .iter()
                .rposition(|c| CLAUSE_END.contains(c))
                .map_or(s, |p| s + p + 1)
        };
        let mut window_start = clause_before(clause.0);
        if folded[window_start..clause.0]
            .iter()
            .collect::<String>()
            .trim_end_matches(CLAUSE_END)
            == "其中"
        {
            window_start = clause_before(window_start);
        }
        // Need words in the mention's own clause, or in the clause before it
        // when its own has no verb of doing (筛查出…需求,其中,基本康复服务645人).
        let window: String = folded[window_start..clause.0].iter().collect();
        let needs = NEED_WORDS.iter().any(|w| own.contains(w))
            || (NEED_WORDS.iter().any(|w| window.contains(w)) && !VERBS.iter().any(|v| own.contains(v)));
        // Mis-decoded text (总?cè)蝿?wù)数) anywhere in the sentence: its words
        // (任务?) cannot be trusted, so neither can its numbers.
        // (Placeholders such as xx or 〔xx〕 are not mis-decoding: pinyin
        // with tone marks and question marks standing for characters are.)
        let garbled = text.contains('?') || text.chars().any(|c| ('\u{c0}'..='\u{24f}').contains(&c));
        let off_subject = !on_subject;
        // An intention (计划慰问200户左右, 力争完成…): 计划 followed by a verb
        // (not 阳光家园计划项目), or a word of intent.
        let intended = INTENT_WORDS.iter().any(|w| own.contains(w))
            || own
                .match_indices("计划")
                .any(|(b, w)| VERBS.iter().any(|v| own[b + w.len()..].starts_with(v)));
        // A quota broken down in brackets ((其中自治区下达指标数246人,…)) is
        // still a quota: it is never published as a fact either way.
        let bracketed_quota = in_brackets && kind == MentionKind::Quota && QUOTA_WORDS.iter().any(|w| own.contains(w));
        let doubtful = (in_brackets && !bracketed_quota)
            || in_quotes
            || needs
            || garbled
            || off_subject
            || ((planned || intended) && kind == MentionKind::Achievement);
        let written: String = chars[vs..ve].iter().collect();
        let mut mention = |ind: &Indicator, rule: &str, confidence: f64, dim: Option<(String, String)>| {
            let confidence: f64 = if doubtful { confidence.min(DOUBTFUL) } else { confidence };
            let confidence = (confidence * 100.0).round() / 100.0;
            out.push(Mention {
                indicator: ind.code.clone(),
                name: ind.name.clone(),
                value: reading.0,
                unit_raw: unit_raw(&written),
                approx: reading.2,
                kind,
                dimension: dim.as_ref().map(|d| d.0.clone()),
                category: dim.map(|d| d.1),
                start: vs,
                end: ve,
                text: written.clone(),
                sentence: sentence_raw.clone(),
                rule: rule.to_string(),
                confidence,
                decision: if confidence >= PUBLISH_AT {
                    Decision::Publish
                } else {
                    Decision::Review
                },
            });
        };
        // 其中: a category of the head indicator.
        if let (Some(q), Some((ind, _, _))) = (qita, head)
            && vs > q
        {
            let clause_text: String = folded[clause.0..vs].iter().collect();
            if let Some((dim, cat)) = category_in(ind, &clause_text) {
                if fits(ind, &unit) {
                    mention(ind, "breakdown_after_qizhong", 0.9, Some((dim, cat)));
                }
                continue;
            }
        }
        let clues = Clues {
            before: &before,
            lead,
            progress,
        };
        let Some((p, rule, confidence)) = nearest(&phrases, vs, ve, clause, &unit, clues, folded) else {
            // Named by the paragraph's previous sentences only (本年度…燃油补贴
            // 任务数…。今年下达至我区任务193户,每户补贴260元): one indicator
            // counted in the unit, the phrase's head word (补贴) again in this
            // sentence, and a verb or an assignment before the value.
            let mut named: Vec<&Indicator> = context
                .iter()
                .flatten()
                .filter(|p| !p.generic && fits(p.indicator, &unit))
                .filter(|p| {
                    let head: String = folded[p.end.saturating_sub(2)..p.end].iter().collect();
                    text.contains(&head)
                })
                .map(|p| p.indicator)
                .collect();
            named.dedup_by(|a, b| a.code == b.code);
            let acted = VERBS.iter().any(|v| prefix.contains(v)) || kind == MentionKind::Quota;
            if let [ind] = named[..]
                && acted
                && !phrases.iter().any(|p| fits(p.indicator, &unit))
            {
                mention(ind, "named_in_previous_sentence", 0.9, None);
            }
            continue;
        };
        match head {
            // After 其中, a value of the indicator a published total of the
            // same kind opened the sentence with, naming no category, is a
            // part of that total (适配辅助器具342人,其中…助行器45件), not another
            // total. (登记85名,其中40名…实施了复明手术: the registration was
            // not published, the operations are the total.)
            Some((h, k, true)) if qita.is_some_and(|q| vs > q) && h.code == p.indicator.code && k == kind => {
                mention(p.indicator, "part_after_qizhong", DOUBTFUL, None);
                continue;
            }
            Some(_) => mention(p.indicator, rule, confidence, None),
            None => {
                mention(p.indicator, rule, confidence, None);
                let published = out.last().is_some_and(|m| m.decision == Decision::Publish);
                head = Some((p.indicator, kind, published));
            }
        }
    }
    arithmetic(&mut out[first..], &rates);
    phrases
}

/// A sentence that states a count, a one-off rate and a total (共慰问8户,每户300元,
/// 共计2400元) states a product: when it holds, the rule says so; when it does
/// not, the count and the total wait for review with the sum written out,
/// whatever their confidence.
fn arithmetic(found: &mut [Mention], rates: &[(f64, usize)]) {
    let [(rate, at)] = rates else { return };
    let is_total = |m: &Mention| m.kind == MentionKind::Achievement && m.dimension.is_none();
    // The count the rate follows, and the amount after it.
    let Some(count) = found
        .iter()
        .rposition(|m| is_total(m) && m.end <= *at && !m.unit_raw.ends_with('元'))
    else {
        return;
    };
    let Some(amount) = found
        .iter()
        .position(|m| is_total(m) && m.start > *at && m.unit_raw.ends_with('元'))
    else {
        return;
    };
    let (n, total) = (found[count].value, found[amount].value);
    let product = n * rate;
    let fmt = crate::submission::format_number;
    if (product - total).abs() <= total.abs() * 0.005 + 0.5 {
        for i in [count, amount] {
            found[i]
                .rule
                .push_str(&format!("; {} × {} = {}", fmt(n), fmt(*rate), fmt(total)));
        }
        return;
    }
    for i in [count, amount] {
        let m = &mut found[i];
        m.rule.push_str(&format!(
            "; arithmetic: {} × {} = {}, not {}",
            fmt(n),
            fmt(*rate),
            fmt(product),
            fmt(total)
        ));
        m.confidence = m.confidence.min(DOUBTFUL);
        m.decision = Decision::Review;
    }
}

/// Characters a sentence's topic lead (before its colon) may have.
const LEAD_CHARS: usize = 16;

/// What the sentence around a value says, for [`nearest`].
#[derive(Clone, Copy)]
struct Clues<'a> {
    /// The value's clause before it.
    before: &'a str,
    /// The sentence's topic lead (before its colon).
    lead: Option<(usize, usize)>,
    /// The value is what was done against a quota named before it.
    progress: bool,
}

/// The best phrase for a value at `vs..ve` written in `unit`.
fn nearest<'c>(
    phrases: &'c [Phrase<'c>],
    vs: usize,
    ve: usize,
    clause: (usize, usize),
    unit: &str,
    clues: Clues,
    folded: &[char],
) -> Option<(&'c Phrase<'c>, &'static str, f64)> {
    let Clues { before, lead, progress } = clues;
    // Another indicator counted in the unit named between a phrase and the value.
    let other_between = |p: &Phrase| {
        phrases
            .iter()
            .any(|o| o.start >= p.end && o.end <= vs && o.indicator.code != p.indicator.code && fits(o.indicator, unit))
    };
    let mut best: Option<(&Phrase, &'static str, f64, usize)> = None;
    for p in phrases.iter().filter(|p| fits(p.indicator, unit)) {
        let same_clause = p.start >= clause.0 && p.end <= clause.1;
        let (rule, mut confidence, distance) = if p.end <= vs {
            match same_clause {
                true => ("phrase_before_in_clause", 0.93, vs - p.end),
                // 6084人享受重度残疾人护理补贴,每人每月发放50元,共计155.67万元: the
                // amount of the count the sentence named, no other indicator between.
                false
                    if unit == "元"
                        && !phrases.iter().any(|o| {
                            o.start >= p.end && o.end <= vs && o.indicator.code != p.indicator.code && !o.generic
                        })
                        && folded[p.end..vs].iter().filter(|c| CLAUSE_END.contains(c)).count() <= 3 =>
                {
                    ("amount_after_its_count", 0.9, vs - p.end)
                }
                // 5、残疾人信访:…,协调解决各类问题260多件: the topic the sentence
                // opened with, when nothing between names another indicator
                // counted in the unit.
                false
                    if lead.is_some_and(|(ls, le)| p.start >= ls && p.end <= le)
                        && !p.generic
                        // A verb of doing in the value's clause (解决…260件), not a
                        // state of what the topic counts (现已入住40户).
                        && VERBS.iter().any(|v| before.contains(v))
                        && !other_between(p) =>
                {
                    ("topic_of_sentence", 0.9, vs - p.end)
                }
                // 发放困难残疾人生活补贴1305万元,惠及3210人: the count of the
                // amount the sentence named.
                false
                    if unit != "元"
                        && !p.generic
                        && BENEFICIARY_WORDS.iter().any(|w| before.contains(w))
                        && !other_between(p)
                        && folded[p.end..vs].iter().filter(|c| CLAUSE_END.contains(c)).count() <= 2 =>
                {
                    ("count_after_its_amount", 0.9, vs - p.end)
                }
                // 下达…基本康复服务任务120人,截至6月底已完成73人.
                false if progress && !p.generic && !other_between(p) => ("done_against_quota", 0.9, vs - p.end),
                false => ("phrase_earlier_in_sentence", 0.75, vs - p.end),
            }
        } else if p.start >= ve {
            match same_clause {
                true => ("phrase_after_in_clause", 0.91, p.start - ve),
                false => ("phrase_later_in_sentence", 0.6, p.start - ve),
            }
        } else {
            continue;
        };
        if same_clause && VERBS.iter().any(|v| before.contains(v)) {
            confidence += 0.04;
        }
        if p.generic {
            confidence -= 0.25;
        }
        let better = match &best {
            None => true,
            Some((b, _, bc, bd)) => {
                confidence > *bc + 1e-9
                    || ((confidence - *bc).abs() < 1e-9
                        && (distance < *bd || (distance == *bd && p.end - p.start > b.end - b.start)))
            }
        };
        if better {
            best = Some((p, rule, confidence, distance));
        }
    }
    best.map(|(p, r, c, _)| (p, r, c.clamp(0.0, 0.99)))
}

/// Whether a value written in `unit` can be a value of `ind`.
fn fits(ind: &Indicator, unit: &str) -> bool {
    unit == ind.unit || ind.accepted_units.iter().any(|u| u == unit)
}

/// Every phrase of every indicator in the folded sentence, longest first
/// where two overlap.
fn phrases<'c>(text: &str, offset: usize, catalog: &'c Catalog) -> Vec<Phrase<'c>> {
    let mut found: Vec<Phrase> = Vec::new();
    for ind in &catalog.indicators {
        let labels = std::iter::once((&ind.name, false))
            .chain(ind.aliases.iter().map(|a| (a, true)))
            .chain(ind.prose.iter().map(|p| (p, false)));
        for (label, alias) in labels {
            let label = fold(label);
            if label.is_empty() {
                continue;
            }
            for (b, _) in text.match_indices(label.as_str()) {
                let start = offset + text[..b].chars().count();
                let len = label.chars().count();
                found.push(Phrase {
                    indicator: ind,
                    start,
                    end: start + len,
                    generic: alias && len <= 2,
                });
            }
        }
    }
    // A phrase inside a longer one of another indicator counted in the same
    // unit is not a phrase (康复服务 in 基本康复服务); with another unit the
    // unit decides (慰问 of households in 慰问金).
    found.sort_by_key(|p| std::cmp::Reverse(p.end - p.start));
    let mut kept: Vec<Phrase> = Vec::new();
    for p in found {
        let inside = kept.iter().any(|k| {
            k.start <= p.start
                && p.end <= k.end
                && k.indicator.code != p.indicator.code
                && k.indicator.unit == p.indicator.unit
                && k.end - k.start > p.end - p.start
        });
        if !inside {
            kept.push(p);
        }
    }
    kept
}

/// The category of one of `ind`'s breakdowns named last in `before` (the
/// clause up to the value: 视力残疾121人、听力残疾128人 → 听力 for 128).
fn category_in(ind: &Indicator, before: &str) -> Option<(String, String)> {
    ind.breakdowns
        .iter()
        .flat_map(|b| b.categories.iter().map(move |c| (b, c)))
        .filter_map(|(b, c)| before.rfind(fold(c).as_str()).map(|at| (at, b, c)))
        .max_by_key(|(at, _, _)| *at)
        .map(|(_, b, c)| (b.dimension.clone(), c.clone()))
}

/// The clause around the value at `vs..ve`: between clause punctuation,
/// inside the sentence (a thousands separator inside the value is not one).
fn clause_bounds(folded: &[char], vs: usize, ve: usize, s: usize, e: usize) -> (usize, usize) {
    let start = folded[s..vs]
        .iter()
        .rposition(|c| CLAUSE_END.contains(c))
        .map_or(s, |p| s + p + 1);
    let end = folded[ve..e]
        .iter()
        .position(|c| CLAUSE_END.contains(c))
        .map_or(e, |p| ve + p);
    (start, end)
}

fn is_numeral(c: char) -> bool {
    is_cn_digit(c) || is_magnitude(c)
}

/// The value mention starting at `i`, if one does: its length in characters
/// and (value, unit, approx). The longest reading with a unit wins.
fn value_at(folded: &[char], i: usize, e: usize) -> Option<(usize, (f64, String, bool))> {
    let c = folded[i];
    // 十二名, 廿三户: a number may open with 十 (or 拾, 廿, 卅); not with 百/千/万,
    // which open words (百姓, 千方百计, 万众).
    let starts = c.is_ascii_digit() || is_cn_digit(c) || matches!(c, '十' | '拾' | '廿' | '卅');
    if !starts {
        return None;
    }
    // Inside a longer number, or an ordinal (第二十七个), or a word (一级, 一直, 统一).
    if i > 0 {
        let p = folded[i - 1];
        if p.is_ascii_digit() || is_numeral(p) || p == '.' || p == '第' || p.is_ascii_alphabetic() {
            return None;
        }
    }
    let mut j = i;
    while j < e && j - i < 24 {
        let c = folded[j];
        let number_like =
            c.is_ascii_digit() || is_numeral(c) || matches!(c, '.' | ',' | '%' | '多' | '余' | '来' | '点');
        if !(number_like || is_unit_char(c)) {
            break;
        }
        // A clause comma is not a thousands separator unless three digits follow.
        if c == ',' && !thousands_after(folded, j) {
            break;
        }
        j += 1;
    }
    // Longest prefix the grammar reads as one number with a unit; units may
    // be followed by approximation words (左右, 以上), which `read` takes too.
    let mut end = (j + 4).min(e);
    while end > i {
        let s: String = folded[i..end].iter().collect();
        let r = read(&s);
        if let (Some(v), Some(u)) = (r.value, r.unit.as_ref())
            && r.error.is_none()
            && !s.ends_with(',')
        {
            return Some((end - i, (v, u.clone(), r.approx)));
        }
        end -= 1;
    }
    None
}

fn thousands_after(folded: &[char], comma: usize) -> bool {
    let next: Vec<char> = folded[comma + 1..].iter().take(4).copied().collect();
    next.len() >= 3 && next[..3].iter().all(|c| c.is_ascii_digit()) && next.get(3).is_none_or(|c| !c.is_ascii_digit())
}

fn is_unit_char(c: char) -> bool {
    "人名位户例辆件个次台套份项所家处场期批张间座元万亿千%".contains(c)
}

/// The unit as written: what follows the number (万元, 名, 例).
fn unit_raw(written: &str) -> String {
    let mut s = written;
    for suffix in ["左右", "上下", "以上", "以内", "以下"] {
        s = s.strip_suffix(suffix).unwrap_or(s);
    }
    let folded: Vec<char> = s.chars().collect();
    let start = folded
        .iter()
        .rposition(|&c| {
            let f = fold_char(c);
            f.is_ascii_digit() || "〇零一二三四五六七八九两十百点.多余来".contains(f)
        })
        .map_or(0, |p| p + 1);
    folded[start..].iter().collect::<String>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::from_toml("indicators.toml", include_str!("../../../schemas/indicators.toml")).unwrap()
    }

    fn found(text: &str) -> Vec<(String, f64, MentionKind, Option<String>, Decision)> {
        extract(text, &catalog())
            .into_iter()
            .map(|m| (m.indicator, m.value, m.kind, m.category, m.decision))
            .collect()
    }

    #[test]
    fn a_phrase_and_a_unit_in_one_clause_is_published_with_where_it_stands() {
        let text = "截止6月底,全區累計完成白內障復明手術233例。";
        let m = &extract(text, &catalog())[0];
        assert_eq!(
            (m.indicator.as_str(), m.value, m.decision),
            ("cataract_surgery", 233.0, Decision::Publish)
        );
        let chars: Vec<char> = text.chars().collect();
        assert_eq!(chars[m.start..m.end].iter().collect::<String>(), "233例");
        assert_eq!((m.text.as_str(), m.unit_raw.as_str()), ("233例", "例"));
        assert_eq!(m.sentence, text);
    }

    #[test]
    fn amounts_take_the_count_phrase_of_their_sentence_and_rates_are_skipped() {
        let got = found("我區共有6084人享受重度殘疾人護理補貼,每人每月發放50元,共計155.67萬元。");
        assert_eq!(got[0].0, "severe_care_recipients");
        assert_eq!(got[0].1, 6084.0);
        assert_eq!(got[1].0, "severe_care_amount");
        assert_eq!(got[1].1, 1_556_700.0);
        assert_eq!(got.len(), 2, "{got:?}");
    }

    #[test]
    fn qizhong_breaks_the_head_indicator_down() {
        let got = found("上半年,共為548名殘疾人辦理了第二代殘疾人證,其中一級殘疾145人,二級殘疾350人。");
        assert_eq!(got[0].0, "certificates_issued");
        assert_eq!(got[1].3.as_deref(), Some("一级"));
        assert_eq!(got[2].3.as_deref(), Some("二级"));
        assert_eq!((got[1].1, got[2].1), (145.0, 350.0));
    }

    #[test]
    fn numbers_may_open_with_ten() {
        let got = found("為低收入家庭的十二名聽障兒童配發助聽器。");
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!((got[0].0.as_str(), got[0].1), ("hearing_aids", 12.0));
        // 百/千/万 open words, not numbers.
        assert!(found("千方百計為殘疾人辦實事,百姓滿意。").is_empty());
    }

    #[test]
    fn a_part_after_qizhong_is_not_another_total() {
        let got = found("為三百四十二名殘疾人適配輔助器具,其中發放輪椅八十六輛、助行器四十五件。");
        let published: Vec<_> = got.iter().filter(|m| m.4 == Decision::Publish).collect();
        assert_eq!(published.len(), 2, "{got:?}");
        assert_eq!((published[0].0.as_str(), published[0].1), ("assistive_devices", 342.0));
        assert_eq!((published[1].0.as_str(), published[1].1), ("wheelchairs", 86.0));
        assert!(got.iter().any(|m| m.1 == 45.0 && m.4 == Decision::Review), "{got:?}");
        // A total that was not published (a registration) leaves the part a total.
        let got = found("完成白內障登記85名,其中40名貧困白內障患者實施了完全免費的復明手術。");
        assert!(got.iter().any(|m| m.1 == 40.0 && m.4 == Decision::Publish), "{got:?}");
    }

    #[test]
    fn a_count_after_its_amount_and_what_was_done_against_a_quota() {
        let got = found("全年發放困難殘疾人生活補貼一千三百零五萬元,惠及三千二百一十人。");
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(
            got[1],
            (
                "hardship_recipients".into(),
                3210.0,
                MentionKind::Achievement,
                None,
                Decision::Publish
            )
        );
        // Without a word of who it reached, a count after the amount stays doubtful.
        let got = found("全年發放困難殘疾人生活補貼一千三百零五萬元,共三千二百一十人。");
        assert_eq!(got[1].4, Decision::Review, "{got:?}");
        let got = found("全年縣殘聯下達我鎮基本康復服務任務120人,截至6月底已完成73人。");
        assert_eq!(
            got,
            vec![
                ("basic_rehab".into(), 120.0, MentionKind::Quota, None, Decision::Publish),
                (
                    "basic_rehab".into(),
                    73.0,
                    MentionKind::Achievement,
                    None,
                    Decision::Publish
                ),
            ]
        );
    }

    #[test]
    fn plans_and_intentions_are_not_achievements() {
        let text = "XX县残联2024年上半年工作总结和下半年工作安排\n完成白内障复明手术46例。\n二、下半年工作安排\n1.完成剩余54户无障碍改造；2.开展走访慰问活动。\n三、存在问题\n完成白内障复明手术3例。";
        let got = found(text);
        let decisions: Vec<_> = got.iter().map(|m| (m.1, m.4)).collect();
        assert_eq!(
            decisions,
            vec![
                (46.0, Decision::Publish),
                (54.0, Decision::Review),
                (3.0, Decision::Publish)
            ]
        );
        let got = found("开展第二轮走访慰问活动,计划慰问残疾人家庭200户左右。");
        assert_eq!(got[0].4, Decision::Review, "{got:?}");
        // 阳光家园计划 names a programme, it is not an intention.
        let got = found("阳光家园计划居家托养服务惠及三百人。");
        assert_eq!(got[0].4, Decision::Publish, "{got:?}");
    }

    #[test]
    fn each_is_a_rate_and_a_heading_of_another_organisation_ends_the_subject() {
        let got = found("向2名困难残疾大学生发放助学金各3000元,共6000元。");
        let values: Vec<f64> = got.iter().map(|m| m.1).collect();
        assert_eq!(values, vec![2.0, 6000.0], "{got:?}");
        // A report about disabled persons: a paragraph that does not say so is still on subject…
        let text =
            "XX街道残疾人工作情况汇报\n(六)信访:接待来访23人次,办结信访事项5件。\n妇联上半年工作汇报\n接待来访40人次。";
        let got = found(text);
        let decisions: Vec<_> = got.iter().map(|m| (m.1, m.4)).collect();
        // …until a heading names another organisation.
        assert_eq!(
            decisions,
            vec![
                (23.0, Decision::Publish),
                (5.0, Decision::Publish),
                (40.0, Decision::Review)
            ]
        );
    }

    #[test]
    fn assignments_are_quotas() {
        let got = found("我區今年實施殘疾人家庭無障礙改造任務30戶,每戶補助資金4000元。");
        assert_eq!(got[0].0, "accessibility_renovation");
        assert_eq!(got[0].2, MentionKind::Quota);
        assert_eq!(got.len(), 1, "{got:?}");
    }

    #[test]
    fn a_topic_lead_or_the_previous_sentence_names_the_indicator_when_the_sentence_does_not() {
        let got = found("5、殘疾人信訪:半年來接待來訪300人次,協調解決各類問題260多件。");
        assert!(
            got.contains(&(
                "petitions_resolved".into(),
                260.0,
                MentionKind::Achievement,
                None,
                Decision::Publish
            )),
            "{got:?}"
        );
        // A state of what the topic counts is not a value of it.
        let states = found("3、危房改造:實施二期殘疾人危房改造50戶,現已入住40戶,10戶正在建設中。");
        assert_eq!(
            states.iter().filter(|m| m.4 == Decision::Publish).count(),
            1,
            "{states:?}"
        );
        let fuel = found(
            "6、實施殘疾人機動輪椅車燃油補貼項目。本年度燃油補貼任務數由上年度錄入人數確定。今年下達至我區任務193戶,每戶補貼260元,共計5.018萬元。",
        );
        assert!(
            fuel.contains(&(
                "fuel_households".into(),
                193.0,
                MentionKind::Quota,
                None,
                Decision::Publish
            )),
            "{fuel:?}"
        );
        assert!(
            fuel.contains(&(
                "fuel_amount".into(),
                50180.0,
                MentionKind::Quota,
                None,
                Decision::Publish
            )),
            "{fuel:?}"
        );
        // Without the phrase's head word in the sentence, the earlier sentence names nothing.
        let other = found("全年完成白內障復明手術30例。為全縣15名貧困精神病患者每人補助藥費500元。");
        assert_eq!(other.len(), 1, "{other:?}");
        // Nor across paragraphs.
        let apart = found("本年度燃油補貼任務數由上年度錄入人數確定。\n今年下達至我區任務193戶,每戶補貼260元。");
        assert!(apart.is_empty(), "{apart:?}");
    }

    #[test]
    fn a_quota_broken_down_in_brackets_is_a_quota_and_other_bracketed_values_wait() {
        let got = found("今年陽光家園計劃補助殘疾人共286人(其中自治區下達指標數246人,市本級財政追加40人)。");
        assert!(
            got.contains(&(
                "sunshine_home_care".into(),
                246.0,
                MentionKind::Quota,
                None,
                Decision::Publish
            )),
            "{got:?}"
        );
        let noted = found("上半年完成白內障復明手術30例(另有12例待核實)。");
        assert!(
            noted.contains(&(
                "cataract_surgery".into(),
                12.0,
                MentionKind::Achievement,
                None,
                Decision::Review
            )),
            "{noted:?}"
        );
    }

    #[test]
    fn a_stated_product_is_checked() {
        let text = "春節期間共慰問困難殘疾人8戶,每戶300元,共計發放慰問金2400元。";
        let ok = extract(text, &catalog());
        let got: Vec<(&str, f64, Decision)> = ok.iter().map(|m| (m.indicator.as_str(), m.value, m.decision)).collect();
        assert_eq!(
            got,
            [
                ("condolence_visits", 8.0, Decision::Publish),
                ("condolence_money", 2400.0, Decision::Publish)
            ]
        );
        assert!(ok[1].rule.ends_with("; 8 × 300 = 2400"), "{}", ok[1].rule);
        let wrong = extract(&text.replace("2400", "2500"), &catalog());
        assert!(wrong.iter().all(|m| m.decision == Decision::Review), "{wrong:?}");
        assert!(
            wrong[0].rule.ends_with("arithmetic: 8 × 300 = 2400, not 2500"),
            "{}",
            wrong[0].rule
        );
        // A monthly rate times a count is not the half-year total (the count changes): not checked.
        let monthly = extract(
            "共有6084人享受重度殘疾人護理補貼,每人每月發放50元,共計155.67萬元。",
            &catalog(),
        );
        assert!(monthly.iter().all(|m| m.decision == Decision::Publish), "{monthly:?}");
    }

    #[test]
    fn dates_ordinals_and_unitless_numbers_are_not_mentions() {
        assert!(found("5月18日,我會黨支部結合第二十七個“全國助殘日”開展活動。").is_empty());
        assert!(found("白內障復明手術2023年度").is_empty());
    }
}

/// One labelled value: what a person re-typing the document would enter.
#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    /// Catalog code.
    pub indicator: String,
    /// Value in the catalog unit.
    pub value: f64,
    /// Achievement or quota.
    pub kind: MentionKind,
    /// Breakdown category, if any.
    pub category: Option<String>,
}

/// Parses a labels file: tab-separated `indicator value kind category text`
/// with a header line; `#` starts a comment line; an empty category is none.
pub fn parse_labels(text: &str) -> Result<Vec<Label>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 4 {
            return Err(format!(
                "line {}: expected indicator, value, kind, category, text",
                i + 1
            ));
        }
        out.push(Label {
            indicator: f[0].trim().to_string(),
            value: f[1]
                .trim()
                .parse()
                .map_err(|_| format!("line {}: value {:?}", i + 1, f[1]))?,
            kind: match f[2].trim() {
                "achievement" => MentionKind::Achievement,
                "quota" => MentionKind::Quota,
                k => return Err(format!("line {}: kind {k:?} is neither achievement nor quota", i + 1)),
            },
            category: Some(f[3].trim().to_string()).filter(|c| !c.is_empty()),
        });
    }
    Ok(out)
}

/// Per indicator: labelled values found (true positives), values found that
/// no label has (false positives), labels not found (false negatives).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Score {
    /// Found and labelled.
    pub true_positives: usize,
    /// Found, not labelled.
    pub false_positives: usize,
    /// Labelled, not found.
    pub false_negatives: usize,
}

impl Score {
    /// Share of what was found that is right (1 when nothing was found).
    pub fn precision(&self) -> f64 {
        let found = self.true_positives + self.false_positives;
        if found == 0 {
            1.0
        } else {
            self.true_positives as f64 / found as f64
        }
    }

    /// Share of the labels found (1 when there are none).
    pub fn recall(&self) -> f64 {
        let labelled = self.true_positives + self.false_negatives;
        if labelled == 0 {
            1.0
        } else {
            self.true_positives as f64 / labelled as f64
        }
    }

    /// Adds another score's counts.
    pub fn add(&mut self, o: &Score) {
        self.true_positives += o.true_positives;
        self.false_positives += o.false_positives;
        self.false_negatives += o.false_negatives;
    }
}

/// Scores `found` against `labels`, per indicator: a mention matches a label
/// with the same indicator, value, kind and category, each label once.
pub fn score<'m>(
    found: impl IntoIterator<Item = &'m Mention>,
    labels: &[Label],
) -> std::collections::BTreeMap<String, Score> {
    let mut scores: std::collections::BTreeMap<String, Score> = std::collections::BTreeMap::new();
    let mut open: Vec<Option<&Label>> = labels.iter().map(Some).collect();
    for m in found {
        let hit = open.iter_mut().find(|l| {
            l.is_some_and(|l| {
                l.indicator == m.indicator
                    && (l.value - m.value).abs() < 1e-6
                    && l.kind == m.kind
                    && l.category == m.category
            })
        });
        let s = scores.entry(m.indicator.clone()).or_default();
        match hit {
            Some(slot) => {
                *slot = None;
                s.true_positives += 1;
            }
            None => s.false_positives += 1,
        }
    }
    for l in open.into_iter().flatten() {
        scores.entry(l.indicator.clone()).or_default().false_negatives += 1;
    }
    scores
}
