//! Declared rules: `left op right` over indicator cells, evaluated with
//! polars for all townships and periods at once (DHIS2 validation rules:
//! left side, operator, right side, missing-value strategy, importance).
//!
//! Expressions are linear arithmetic over cells, numbers and two variables:
//!
//! ```text
//! fuel_amount = fuel_households * 260 * months
//! 残疾人证核发[类别:视力] + 残疾人证核发[类别:听力] <= 残疾人证核发
//! severe_share = (severe_care_recipients[等级:一级] + severe_care_recipients[等级:二级]) / certificates_issued * 100
//! ```
//!
//! A cell is an indicator (code, name or alias) with an optional
//! `[dimension:category]` or `[category]`; without it, the total. `months`
//! is the number of months the period covers; `rate` is the county's rate of
//! a count × rate = amount check.

use std::collections::BTreeMap;

use polars::prelude::*;
use serde::Deserialize;
use taizhang_model::Severity;

use super::{Check, CheckInput, Failure, FailureFrame, Rows, num, township_label};
use crate::catalog::Catalog;
use crate::period::Period;

/// Comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// =
    Eq,
    /// ≠
    Ne,
    /// <
    Lt,
    /// ≤
    Le,
    /// >
    Gt,
    /// ≥
    Ge,
}

impl Op {
    /// Parses `=`, `==`, `!=`, `≠`, `<`, `<=`, `≤`, `>`, `>=`, `≥`.
    pub fn parse(s: &str) -> Result<Op, String> {
        Ok(match s.trim() {
            "=" | "==" => Op::Eq,
            "!=" | "≠" | "<>" => Op::Ne,
            "<" => Op::Lt,
            "<=" | "≤" => Op::Le,
            ">" => Op::Gt,
            ">=" | "≥" => Op::Ge,
            other => return Err(format!("operator {other:?} is not one of = ≠ < ≤ > ≥")),
        })
    }

    /// The symbol.
    pub fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "≠",
            Op::Lt => "<",
            Op::Le => "≤",
            Op::Gt => ">",
            Op::Ge => "≥",
        }
    }
}

/// What to do when a cell of the rule is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// Skip the township and period when any cell is missing (DHIS2 SKIP_IF_ANY_VALUE_MISSING).
    #[default]
    SkipIfAny,
    /// Skip only when every cell is missing; missing cells count as 0.
    SkipIfAll,
    /// Never skip; missing cells count as 0.
    Never,
}

/// One cell an expression refers to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cell {
    /// Indicator code.
    pub indicator: String,
    /// Dimension, or none for the total.
    pub dimension: Option<String>,
    /// Category, or none for the total.
    pub category: Option<String>,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Ast {
    /// A number.
    Num(f64),
    /// A variable: `months` or `rate`.
    Var(String),
    /// An indicator cell.
    Cell(Cell),
    /// left op right, op one of + - * /.
    Bin(Box<Ast>, char, Box<Ast>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Name(String),
    Sel(String),
    Sym(char),
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if "+-*/()".contains(c) {
            out.push(Tok::Sym(c));
            i += 1;
        } else if c == '[' {
            let end = cs[i..].iter().position(|&x| x == ']').ok_or("unclosed [")? + i;
            out.push(Tok::Sel(cs[i + 1..end].iter().collect()));
            i = end + 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < cs.len() && (cs[i].is_ascii_digit() || cs[i] == '.') {
                i += 1;
            }
            let t: String = cs[start..i].iter().collect();
            out.push(Tok::Num(t.parse().map_err(|_| format!("{t:?} is not a number"))?));
        } else {
            let start = i;
            while i < cs.len() && !cs[i].is_whitespace() && !"+-*/()[]".contains(cs[i]) {
                i += 1;
            }
            out.push(Tok::Name(cs[start..i].iter().collect()));
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<Tok>,
    pos: usize,
    catalog: &'a Catalog,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn expr(&mut self) -> Result<Ast, String> {
        let mut left = self.term()?;
        while let Some(Tok::Sym(op @ ('+' | '-'))) = self.peek().cloned() {
            self.pos += 1;
            left = Ast::Bin(Box::new(left), op, Box::new(self.term()?));
        }
        Ok(left)
    }
    fn term(&mut self) -> Result<Ast, String> {
        let mut left = self.factor()?;
        while let Some(Tok::Sym(op @ ('*' | '/'))) = self.peek().cloned() {
            self.pos += 1;
            left = Ast::Bin(Box::new(left), op, Box::new(self.factor()?));
        }
        Ok(left)
    }
    fn factor(&mut self) -> Result<Ast, String> {
        let tok = self.peek().cloned().ok_or("expression ends too early")?;
        self.pos += 1;
        match tok {
            Tok::Num(n) => Ok(Ast::Num(n)),
            Tok::Sym('(') => {
                let e = self.expr()?;
                match self.peek() {
                    Some(Tok::Sym(')')) => {
                        self.pos += 1;
                        Ok(e)
                    }
                    _ => Err("missing )".into()),
                }
            }
            Tok::Sym('-') => Ok(Ast::Bin(Box::new(Ast::Num(0.0)), '-', Box::new(self.factor()?))),
            Tok::Name(n) if n == "months" || n == "rate" => Ok(Ast::Var(n)),
            Tok::Name(n) => {
                let ind = self
                    .catalog
                    .resolve(&n)
                    .ok_or_else(|| format!("unknown indicator {n:?}"))?;
                let (dimension, category) = match self.peek().cloned() {
                    Some(Tok::Sel(sel)) => {
                        self.pos += 1;
                        let (d, c) = match sel.split_once([':', '：']) {
                            Some((d, c)) => (Some(d.trim().to_string()), c.trim().to_string()),
                            None => (None, sel.trim().to_string()),
                        };
                        let (d, c) = self.catalog.resolve_category(ind, d.as_deref(), &c)?;
                        (Some(d), Some(c))
                    }
                    _ => (None, None),
                };
                Ok(Ast::Cell(Cell {
                    indicator: ind.code.clone(),
                    dimension,
                    category,
                }))
            }
            other => Err(format!("unexpected {other:?}")),
        }
    }
}

/// Parses an expression, resolving indicator and category names.
pub fn parse(src: &str, catalog: &Catalog) -> Result<Ast, String> {
    let mut p = Parser {
        toks: tokenize(src)?,
        pos: 0,
        catalog,
    };
    let e = p.expr()?;
    if p.pos != p.toks.len() {
        return Err(format!("unexpected {:?} after the expression", p.toks[p.pos]));
    }
    Ok(e)
}

fn collect_cells(a: &Ast, out: &mut Vec<Cell>) {
    match a {
        Ast::Cell(c) if !out.contains(c) => out.push(c.clone()),
        Ast::Bin(l, _, r) => {
            collect_cells(l, out);
            collect_cells(r, out);
        }
        _ => {}
    }
}

fn to_expr(a: &Ast, cells: &[Cell], fill: bool) -> Expr {
    match a {
        Ast::Num(n) => lit(*n),
        Ast::Var(v) => col(v.as_str()),
        Ast::Cell(c) => {
            let i = cells
                .iter()
                .position(|x| x == c)
                .expect("cells were collected from this tree");
            let e = col(format!("c{i}").as_str());
            if fill { e.fill_null(lit(0.0)) } else { e }
        }
        Ast::Bin(l, op, r) => {
            let (l, r) = (to_expr(l, cells, fill), to_expr(r, cells, fill));
            match op {
                '+' => l + r,
                '-' => l - r,
                '*' => l * r,
                _ => l / r,
            }
        }
    }
}

/// A declared rule (`kind = "rule"`): `left op right` over indicator cells.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Rule name in results and alerts.
    pub name: String,
    /// Left expression.
    pub left: String,
    /// Operator: = ≠ < ≤ > ≥ (or ASCII == != < <= > >=).
    pub op: String,
    /// Right expression.
    pub right: String,
    /// Absolute difference tolerated.
    #[serde(default)]
    pub tolerance_abs: f64,
    /// Relative difference tolerated, as a share of |right|.
    #[serde(default)]
    pub tolerance_rel: f64,
    /// skip_if_any (default), skip_if_all or never.
    #[serde(default)]
    pub missing: Missing,
    /// Severity.
    pub severity: Severity,
    /// Message template with {township} {period} {left} {right} {diff} {rule}.
    #[serde(default)]
    pub message: Option<String>,
}

impl RuleConfig {
    /// Parses the expressions against the catalog.
    pub fn build(&self, catalog: &Catalog) -> Result<Box<dyn Check>, String> {
        let mut r = Rule::new(
            &self.name,
            &self.left,
            &self.op,
            &self.right,
            catalog,
            self.severity,
            self.missing,
            (self.tolerance_abs, self.tolerance_rel),
        )?;
        r.message = self.message.clone();
        Ok(Box::new(r))
    }
}

/// What a count_rate's rate is per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RatePer {
    /// Per month: times the months the period covers.
    #[default]
    Month,
    /// Per period.
    Period,
}

/// count × rate (× months) = amount (`kind = "count_rate"`; 燃油补贴户数 ×
/// 260 = 燃油补贴金额), a rule with a fixed shape.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountRate {
    /// Count indicator.
    pub count: String,
    /// `month` (default): the rate is per month, times the months the period
    /// covers; `period`: the rate is per period.
    #[serde(default)]
    pub per: RatePer,
    /// Amount indicator (元).
    pub amount: String,
    /// Yuan per count per month (or period).
    pub rate: f64,
    /// Rates of particular counties (6-digit code → yuan).
    #[serde(default)]
    pub county_rates: BTreeMap<String, f64>,
    /// Relative difference tolerated.
    #[serde(default = "default_rate_tolerance")]
    pub tolerance_rel: f64,
    /// Severity.
    pub severity: Severity,
}

fn default_rate_tolerance() -> f64 {
    0.005
}

impl CountRate {
    /// The rule `amount = count * rate (* months)`.
    pub fn build(&self, catalog: &Catalog) -> Result<Box<dyn Check>, String> {
        let (count, amount, rate) = (&self.count, &self.amount, self.rate);
        // Name the key at fault, not the side of the rule it becomes.
        for (key, expr) in [("count", count), ("amount", amount)] {
            parse(expr, catalog).map_err(|e| format!("{key}: {e}"))?;
        }
        let mut r = Rule::new(
            "count_rate",
            amount,
            "=",
            &match self.per {
                RatePer::Month => format!("{count} * rate * months"),
                RatePer::Period => format!("{count} * rate"),
            },
            catalog,
            self.severity,
            Missing::SkipIfAny,
            (0.0, self.tolerance_rel),
        )?;
        r.rates = (rate, self.county_rates.clone());
        r.message = Some(format!(
            "{{township}} {{period}}: {amount} {{left}} ≠ {count} × {rate}{} = {{right}} (count × rate ≠ amount)",
            if self.per == RatePer::Month { " × 月数" } else { "" }
        ));
        Ok(Box::new(r))
    }
}

/// part ≤ whole (`kind = "part_of_whole"`; placed in jobs ≤ trained).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartOfWhole {
    /// The part (an expression).
    pub part: String,
    /// The whole (an expression).
    pub whole: String,
    /// Severity.
    pub severity: Severity,
}

impl PartOfWhole {
    /// The rule `part <= whole`.
    pub fn build(&self, catalog: &Catalog) -> Result<Box<dyn Check>, String> {
        let (part, whole) = (&self.part, &self.whole);
        for (key, expr) in [("part", part), ("whole", whole)] {
            parse(expr, catalog).map_err(|e| format!("{key}: {e}"))?;
        }
        let mut r = Rule::new(
            "part_of_whole",
            part,
            "<=",
            whole,
            catalog,
            self.severity,
            Missing::SkipIfAny,
            (0.0, 0.0),
        )?;
        r.message = Some(format!(
            "{{township}} {{period}}: {part} {{left}} 大于 {whole} {{right}} (part exceeds whole)"
        ));
        Ok(Box::new(r))
    }
}

/// A reported ratio in percent = numerator / denominator × 100 (`kind = "ratio"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ratio {
    /// The reported ratio (%).
    pub ratio: String,
    /// Numerator expression.
    pub numerator: String,
    /// Denominator expression.
    pub denominator: String,
    /// Percentage points tolerated (rounding: 0.01).
    #[serde(default = "default_ratio_tolerance")]
    pub tolerance_abs: f64,
    /// Severity.
    pub severity: Severity,
}

fn default_ratio_tolerance() -> f64 {
    0.01
}

impl Ratio {
    /// The rule `ratio = (numerator) / (denominator) * 100`.
    pub fn build(&self, catalog: &Catalog) -> Result<Box<dyn Check>, String> {
        let (ratio, numerator, denominator) = (&self.ratio, &self.numerator, &self.denominator);
        for (key, expr) in [("ratio", ratio), ("numerator", numerator), ("denominator", denominator)] {
            parse(expr, catalog).map_err(|e| format!("{key}: {e}"))?;
        }
        let mut r = Rule::new(
            "ratio",
            ratio,
            "=",
            &format!("({numerator}) / ({denominator}) * 100"),
            catalog,
            self.severity,
            Missing::SkipIfAny,
            (self.tolerance_abs, 0.0),
        )?;
        r.message = Some(format!(
            "{{township}} {{period}}: {ratio} {{left}}% ≠ ({numerator}) / ({denominator}) = {{right}}% (ratio does not match its parts)"
        ));
        Ok(Box::new(r))
    }
}

/// A rule ready to evaluate.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Rule name in results.
    pub name: String,
    /// Left side, as written and parsed.
    pub left: (String, Ast),
    /// Operator.
    pub op: Op,
    /// Right side, as written and parsed.
    pub right: (String, Ast),
    /// Absolute tolerance.
    pub tolerance_abs: f64,
    /// Relative tolerance (share of |right|).
    pub tolerance_rel: f64,
    /// Missing-value strategy.
    pub missing: Missing,
    /// Severity.
    pub severity: Severity,
    /// Message template: {township} {period} {left} {right} {diff} {rule}.
    pub message: Option<String>,
    /// Default rate and per-county rates for the `rate` variable.
    pub rates: (f64, BTreeMap<String, f64>),
}

impl Rule {
    /// Builds a rule from declared texts.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        left: &str,
        op: &str,
        right: &str,
        catalog: &Catalog,
        severity: Severity,
        missing: Missing,
        tolerance: (f64, f64),
    ) -> Result<Rule, String> {
        Ok(Rule {
            name: name.to_string(),
            left: (
                left.to_string(),
                parse(left, catalog).map_err(|e| format!("left: {e}"))?,
            ),
            op: Op::parse(op)?,
            right: (
                right.to_string(),
                parse(right, catalog).map_err(|e| format!("right: {e}"))?,
            ),
            tolerance_abs: tolerance.0,
            tolerance_rel: tolerance.1,
            missing,
            severity,
            message: None,
            rates: (0.0, BTreeMap::new()),
        })
    }

    /// The indicator the rule is about: the first cell of the left side.
    fn subject(&self) -> Option<String> {
        let mut cells = Vec::new();
        collect_cells(&self.left.1, &mut cells);
        cells.first().map(|c| c.indicator.clone())
    }
}

pub(crate) fn period_months(facts: &DataFrame) -> PolarsResult<DataFrame> {
    // The distinct periods first (a handful), not a string per fact row;
    // rows come in runs of one period, so only a change of period is
    // looked up (a hash of every row's period was 1% of a batch).
    let mut periods = std::collections::BTreeSet::<String>::new();
    let mut last: Option<&str> = None;
    for p in facts.column("period")?.str()?.iter().flatten() {
        if last != Some(p) {
            if !periods.contains(p) {
                periods.insert(p.to_string());
            }
            last = Some(p);
        }
    }
    let months: Vec<f64> = periods
        .iter()
        .map(|p| p.parse::<Period>().map_or(f64::NAN, |p| f64::from(p.months)))
        .collect();
    DataFrame::new_infer_height(vec![
        Column::new("period".into(), periods.into_iter().collect::<Vec<_>>()),
        Column::new("months".into(), months),
    ])
}

/// Evaluates a rule; returns failures in the check-results schema.
pub fn evaluate(rule: &Rule, input: &CheckInput<'_>) -> PolarsResult<DataFrame> {
    let mut cells = Vec::new();
    collect_cells(&rule.left.1, &mut cells);
    collect_cells(&rule.right.1, &mut cells);
    let mut aggs = Vec::new();
    let mut inds: Vec<String> = Vec::new();
    for (i, c) in cells.iter().enumerate() {
        let mut pred = col("indicator").eq(lit(c.indicator.clone()));
        pred = pred.and(match &c.dimension {
            None => col("dimension").is_null(),
            Some(d) => col("dimension").eq(lit(d.clone())),
        });
        pred = pred.and(match &c.category {
            None => col("category").is_null(),
            Some(x) => col("category").eq(lit(x.clone())),
        });
        aggs.push(col("value").filter(pred).first().alias(format!("c{i}").as_str()));
        inds.push(c.indicator.clone());
    }
    let (rate, county_rates) = &rule.rates;
    let rates = DataFrame::new_infer_height(vec![
        Column::new("county".into(), county_rates.keys().cloned().collect::<Vec<_>>()),
        Column::new(
            "county_rate".into(),
            county_rates.values().copied().collect::<Vec<f64>>(),
        ),
    ])?;
    let ind_list = Series::new("inds".into(), inds);
    let mut wide = input
        .facts
        .clone()
        .lazy()
        .filter(col("indicator").is_in(lit(ind_list).implode(false), false))
        .group_by([
            col("program"),
            col("township"),
            col("county"),
            col("period"),
            col("year"),
        ])
        .agg(aggs)
        .join(
            period_months(input.facts)?.lazy(),
            [col("period")],
            [col("period")],
            JoinArgs::new(JoinType::Left),
        )
        .join(
            rates.lazy(),
            [col("county")],
            [col("county")],
            JoinArgs::new(JoinType::Left),
        )
        .with_column(col("county_rate").fill_null(lit(*rate)).alias("rate"));
    let n = cells.len();
    let any_null = (0..n).fold(lit(false), |a, i| a.or(col(format!("c{i}").as_str()).is_null()));
    let all_null = (0..n).fold(lit(n > 0), |a, i| a.and(col(format!("c{i}").as_str()).is_null()));
    wide = match rule.missing {
        Missing::SkipIfAny => wide.filter(any_null.not()),
        Missing::SkipIfAll => wide.filter(all_null.not()),
        Missing::Never => wide,
    };
    let fill = rule.missing != Missing::SkipIfAny;
    let (l, r) = (
        to_expr(&rule.left.1, &cells, fill),
        to_expr(&rule.right.1, &cells, fill),
    );
    let tol_rel = lit(rule.tolerance_rel) * col("right").abs();
    let tol = when(tol_rel.clone().gt(lit(rule.tolerance_abs)))
        .then(tol_rel)
        .otherwise(lit(rule.tolerance_abs));
    let diff = col("left") - col("right");
    let fails = match rule.op {
        Op::Eq => diff.abs().gt(col("tol")),
        Op::Ne => diff.abs().lt_eq(col("tol")),
        Op::Lt => diff.gt_eq(col("tol")),
        Op::Le => diff.gt(col("tol")),
        Op::Gt => diff.lt_eq(lit(0.0) - col("tol")),
        Op::Ge => diff.lt(lit(0.0) - col("tol")),
    };
    let failures = wide
        .with_columns([
            l.cast(DataType::Float64).alias("left"),
            r.cast(DataType::Float64).alias("right"),
        ])
        .with_column(tol.alias("tol"))
        .filter(fails.and(col("left").is_not_null()).and(col("right").is_not_null()))
        .sort(["township", "period"], Default::default())
        .collect()?;
    let mut rows = Rows::default();
    let ff = FailureFrame::read(&failures)?;
    let (left, right) = (ff.f64("left")?, ff.f64("right")?);
    let subject = rule.subject();
    for i in 0..ff.len() {
        let (t, p) = (ff.township(i), ff.period(i));
        let (lv, rv) = (left.get(i).unwrap_or(f64::NAN), right.get(i).unwrap_or(f64::NAN));
        let who = township_label(input.registry, t);
        let default = format!(
            "{who} {p} {}: {} = {} {} {} = {} 不成立 (does not hold)",
            rule.name,
            rule.left.0,
            num(lv),
            rule.op.symbol(),
            rule.right.0,
            num(rv)
        );
        let message = match &rule.message {
            Some(m) => m
                .replace("{township}", &who)
                .replace("{period}", p)
                .replace("{left}", &num(lv))
                .replace("{right}", &num(rv))
                .replace("{diff}", &num(lv - rv))
                .replace("{rule}", &rule.name),
            None => default,
        };
        rows.push(Failure {
            indicator: subject.as_deref(),
            dimension: None,
            observed: Some(lv),
            expected: Some(rv),
            message,
            ..ff.failure(i, &rule.name, rule.severity)
        });
    }
    rows.finish()
}

impl Check for Rule {
    fn name(&self) -> &'static str {
        "rule"
    }

    fn run(&self, input: &CheckInput<'_>) -> PolarsResult<DataFrame> {
        evaluate(self, input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::config;

    #[test]
    fn parses_cells_numbers_and_variables() {
        let cfg = config();
        let a = parse("燃油补贴户数 * 260 * months", &cfg.catalog).unwrap();
        let mut cells = Vec::new();
        collect_cells(&a, &mut cells);
        assert_eq!(cells[0].indicator, "fuel_households");
        let b = parse("残疾人证核发[视力] + certificates_issued[类别:听力]", &cfg.catalog).unwrap();
        let mut cells = Vec::new();
        collect_cells(&b, &mut cells);
        assert_eq!(cells[0].dimension.as_deref(), Some("类别"));
        assert_eq!(cells[1].category.as_deref(), Some("听力"));
        assert!(
            parse("no_such_indicator * 2", &cfg.catalog)
                .unwrap_err()
                .contains("unknown indicator")
        );
        assert!(parse("残疾人证核发[性别:男]", &cfg.catalog).is_err());
        assert!(parse("(1 + 2", &cfg.catalog).is_err());
    }
}
