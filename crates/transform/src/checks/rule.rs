//! Declared rules: `left op right` over indicator cells, evaluated for all
//! townships and periods at once (DHIS2 validation rules: left side,
//! operator, right side, missing-value strategy, importance): every rule's
//! cells read from one table made in one pass over the facts ([`Cells`]),
//! each rule's arithmetic a polars expression over it.
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
    // looked up (a hash of every row's period was 1% of a batch), a row
    // compared with the one before by its Arrow view (a memcmp per row
    // was 0.2 CPU-s of a national recompute).
    let mut periods = std::collections::BTreeSet::<String>::new();
    let texts = crate::text::Texts::of(facts, "period")?;
    for i in 0..texts.len() {
        if crate::text::like_before(&[&texts], i) {
            continue;
        }
        if let Some(p) = texts.get(i)
            && !periods.contains(p)
        {
            periods.insert(p.to_string());
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

/// The cells rules read, one row per (program, township, county, period,
/// year) that has a value of any of the rules' indicators: each cell's
/// value where the group's first row of it has one, and which indicators
/// the group has rows of. Made in one pass over the facts for every rule of
/// a run (a polars filter and group-by per rule before: a batch's rules
/// grouped its 200,000 rows five times).
pub struct Cells {
    /// The group's key columns, from its first row.
    keys: DataFrame,
    /// Every cell a rule reads, in the order of `values`' columns.
    cells: Vec<Cell>,
    /// Every indicator a rule reads, in the order of `present`'s columns.
    indicators: Vec<String>,
    /// Per group, per cell: the value of the group's first row of the
    /// cell (None: no row, or a row without a value).
    values: Vec<Option<f64>>,
    /// Per group, per indicator: whether the group has a row of it.
    present: Vec<bool>,
}

/// The columns a group of [`Cells`] is keyed by (a rule's failure names them).
const GROUP: [&str; 5] = ["program", "township", "county", "period", "year"];

impl Cells {
    /// The cells of `rules` in `facts`.
    pub fn of(facts: &DataFrame, rules: &[&Rule]) -> PolarsResult<Cells> {
        let mut cells: Vec<Cell> = Vec::new();
        for r in rules {
            collect_cells(&r.left.1, &mut cells);
            collect_cells(&r.right.1, &mut cells);
        }
        cells.sort();
        cells.dedup();
        let mut indicators: Vec<String> = cells.iter().map(|c| c.indicator.clone()).collect();
        indicators.sort();
        indicators.dedup();
        let indicator_of: PlHashMap<&str, usize> =
            indicators.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
        let cell_of: PlHashMap<(&str, Option<&str>, Option<&str>), usize> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| ((c.indicator.as_str(), c.dimension.as_deref(), c.category.as_deref()), i))
            .collect();
        let text = |c: &str| crate::text::Texts::of(facts, c);
        let (program, township, county, period) =
            (text("program")?, text("township")?, text("county")?, text("period")?);
        let (indicator, dimension, category) = (text("indicator")?, text("dimension")?, text("category")?);
        let year = crate::text::Numbers::<Int32Type>::of(facts, "year")?;
        let value = crate::text::Numbers::<Float64Type>::of(facts, "value")?;
        /// A group: program, township, county, period, year.
        type Key<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Option<i32>,
        );
        let mut group_of: PlHashMap<Key<'_>, usize> = PlHashMap::new();
        let mut first_rows: Vec<IdxSize> = Vec::new();
        let (mut values, mut seen, mut present) = (Vec::new(), Vec::new(), Vec::new());
        // Rows come in runs of one report, and a report's in runs of one
        // indicator: a group is looked up when the report changes and an
        // indicator when it does (a row compared with the one before by
        // its Arrow views), not at every row.
        let group_keys = [&program, &township, &county, &period];
        let (mut group, mut ind_at): (Option<usize>, Option<usize>) = (None, None);
        for row in 0..indicator.len() {
            let y = year.get(row);
            if !crate::text::like_before(&[&indicator], row) {
                ind_at = indicator.get(row).and_then(|ind| indicator_of.get(ind).copied());
            }
            let Some(i) = ind_at else {
                // The next row's group is not this one's to take.
                group = None;
                continue;
            };
            let same_group = crate::text::like_before(&group_keys, row) && year.get(row - 1) == y;
            let g = match (group, same_group) {
                (Some(g), true) => g,
                _ => {
                    let key = (program.get(row), township.get(row), county.get(row), period.get(row), y);
                    let g = *group_of.entry(key).or_insert_with(|| {
                        first_rows.push(row as IdxSize);
                        values.resize(values.len() + cells.len(), None);
                        seen.resize(seen.len() + cells.len(), false);
                        present.resize(present.len() + indicators.len(), false);
                        first_rows.len() - 1
                    });
                    group = Some(g);
                    g
                }
            };
            present[g * indicators.len() + i] = true;
            let ind = indicators[i].as_str();
            if let Some(&k) = cell_of.get(&(ind, dimension.get(row), category.get(row))) {
                let at = g * cells.len() + k;
                if !seen[at] {
                    seen[at] = true;
                    values[at] = value.get(row);
                }
            }
        }
        drop((indicator_of, cell_of));
        let keys = facts.select(GROUP)?.take(&IdxCa::from_vec("rows".into(), first_rows))?;
        Ok(Cells {
            keys,
            cells,
            indicators,
            values,
            present,
        })
    }

    /// A rule's cells as columns `c0`, `c1`, … (in the order
    /// [`collect_cells`] lists them), one row per group with a row of any
    /// of the rule's indicators.
    fn of_rule(&self, cells: &[Cell]) -> PolarsResult<DataFrame> {
        let at = |c: &Cell| {
            self.cells
                .binary_search(c)
                .expect("the rule's cells are among the cells")
        };
        let columns: Vec<usize> = cells.iter().map(at).collect();
        let indicators: Vec<usize> = cells
            .iter()
            .map(|c| {
                self.indicators
                    .binary_search(&c.indicator)
                    .expect("the rule's indicators are among the indicators")
            })
            .collect();
        let (nc, ni) = (self.cells.len(), self.indicators.len());
        let groups = self.keys.height();
        let wanted: Vec<IdxSize> = (0..groups)
            .filter(|g| indicators.iter().any(|i| self.present[g * ni + i]))
            .map(|g| g as IdxSize)
            .collect();
        let mut wide = self.keys.take(&IdxCa::from_vec("groups".into(), wanted.clone()))?;
        for (i, k) in columns.iter().enumerate() {
            let values: Vec<Option<f64>> = wanted.iter().map(|g| self.values[*g as usize * nc + k]).collect();
            wide.with_column(Column::new(format!("c{i}").into(), values))?;
        }
        Ok(wide)
    }
}

/// Evaluates a rule; returns failures in the check-results schema.
pub fn evaluate(rule: &Rule, input: &CheckInput<'_>) -> PolarsResult<DataFrame> {
    evaluate_with(rule, input, &Cells::of(input.facts, &[rule])?)
}

/// Evaluates a rule over `cells` (of at least its cells, in `input.facts`).
pub fn evaluate_with(rule: &Rule, input: &CheckInput<'_>, table: &Cells) -> PolarsResult<DataFrame> {
    let mut cells = Vec::new();
    collect_cells(&rule.left.1, &mut cells);
    collect_cells(&rule.right.1, &mut cells);
    let (rate, county_rates) = &rule.rates;
    let rates = DataFrame::new_infer_height(vec![
        Column::new("county".into(), county_rates.keys().cloned().collect::<Vec<_>>()),
        Column::new(
            "county_rate".into(),
            county_rates.values().copied().collect::<Vec<f64>>(),
        ),
    ])?;
    let mut wide = table
        .of_rule(&cells)?
        .lazy()
        .join(
            // The groups' periods are the facts' (a row per group, not
            // per fact: every rule scanned the batch's facts before).
            period_months(&table.keys)?.lazy(),
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
            Some(m) => fill_message(m, |name| match name {
                "township" => Some(who.as_str().into()),
                "period" => Some(p.into()),
                "left" => Some(num(lv).into()),
                "right" => Some(num(rv).into()),
                "diff" => Some(num(lv - rv).into()),
                "rule" => Some(rule.name.as_str().into()),
                _ => None,
            }),
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

/// `template` with each `{name}` that `value` knows written as its value,
/// in one pass over the template (a chain of `str::replace`s made a string
/// per placeholder of every failure); a placeholder that a value brings
/// in is not replaced again, and one `value` does not know stays as
/// written.
fn fill_message<'a>(template: &str, value: impl Fn(&str) -> Option<std::borrow::Cow<'a, str>>) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let known = after
            .find(['{', '}'])
            .filter(|&end| after.as_bytes()[end] == b'}')
            .and_then(|end| value(&after[..end]).map(|v| (v, end)));
        match known {
            Some((v, end)) => {
                out.push_str(&v);
                rest = &after[end + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

impl Check for Rule {
    fn name(&self) -> &'static str {
        "rule"
    }

    fn run(&self, input: &CheckInput<'_>) -> PolarsResult<DataFrame> {
        evaluate(self, input)
    }

    fn rule(&self) -> Option<&Rule> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{config, frame, random};

    /// A message is its template with each known placeholder written
    /// once: what the chain of `str::replace`s made of every template
    /// without a placeholder inside a value; unknown and unclosed ones,
    /// braces around a placeholder and multi-byte text kept as written.
    #[test]
    fn a_message_fills_each_known_placeholder() {
        let value = |name: &str| -> Option<std::borrow::Cow<'static, str>> {
            match name {
                "township" => Some("城关镇 (110105001)".into()),
                "left" => Some("12".into()),
                "diff" => Some("-3.5".into()),
                "odd" => Some("{left}".into()),
                _ => None,
            }
        };
        let chained = |t: &str| {
            t.replace("{township}", "城关镇 (110105001)")
                .replace("{left}", "12")
                .replace("{diff}", "-3.5")
        };
        for t in [
            "{township} 合计 {left} 与分项相差 {diff}",
            "{left}{left}{{diff}}",
            "{unknown} {left",
            "无占位符：本月数据",
            "{}{ {township}}{",
            "",
        ] {
            assert_eq!(fill_message(t, value), chained(t), "{t}");
        }
        // A value that holds a placeholder is written as it is.
        assert_eq!(fill_message("{odd} {left}", value), "{left} 12");
    }

    /// Every distinct period once, in order, with its months (NaN when it
    /// is not a period), however the rows come: in runs, back again after
    /// another, null, in two chunks, texts longer than a view holds.
    #[test]
    fn period_months_are_every_distinct_period_once() {
        let rows = [
            Some("2025-12"),
            Some("2025-12"),
            None,
            Some("2026-Q2"),
            Some("2026-06"),
            None,
            None,
            Some("2026"),
            Some("not a period, longer than twelve"),
            Some("not a period, longer than twelve"),
            Some("2026-H1"),
            Some("2026-06"),
        ];
        let mut first = StringChunked::new("period".into(), &rows[..6]);
        first.append(&StringChunked::new("period".into(), &rows[6..])).unwrap();
        let facts = DataFrame::new_infer_height(vec![first.into_series().into()]).unwrap();
        let out = period_months(&facts).unwrap();
        let periods: Vec<&str> = out.column("period").unwrap().str().unwrap().iter().flatten().collect();
        assert_eq!(
            periods,
            [
                "2025-12",
                "2026",
                "2026-06",
                "2026-H1",
                "2026-Q2",
                "not a period, longer than twelve"
            ]
        );
        let months: Vec<f64> = out.column("months").unwrap().f64().unwrap().iter().flatten().collect();
        assert_eq!(months[..5], [1.0, 12.0, 1.0, 6.0, 3.0]);
        assert!(months[5].is_nan());
    }

    /// A rule's cells the way polars made them before [`Cells`]: the
    /// facts of its indicators grouped, each cell the first of its rows.
    fn grouped(facts: &DataFrame, rule: &Rule) -> DataFrame {
        let mut cells = Vec::new();
        collect_cells(&rule.left.1, &mut cells);
        collect_cells(&rule.right.1, &mut cells);
        let aggs: Vec<Expr> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pred = col("indicator")
                    .eq(lit(c.indicator.clone()))
                    .and(match &c.dimension {
                        None => col("dimension").is_null(),
                        Some(d) => col("dimension").eq(lit(d.clone())),
                    })
                    .and(match &c.category {
                        None => col("category").is_null(),
                        Some(x) => col("category").eq(lit(x.clone())),
                    });
                col("value").filter(pred).first().alias(format!("c{i}").as_str())
            })
            .collect();
        let inds = Series::new(
            "inds".into(),
            cells.iter().map(|c| c.indicator.clone()).collect::<Vec<_>>(),
        );
        facts
            .clone()
            .lazy()
            .filter(col("indicator").is_in(lit(inds).implode(false), false))
            .group_by(GROUP.map(col))
            .agg(aggs)
            .collect()
            .unwrap()
    }

    fn in_order(f: DataFrame) -> DataFrame {
        f.lazy()
            .sort(GROUP, SortMultipleOptions::default().with_nulls_last(false))
            .collect()
            .unwrap()
    }

    #[test]
    fn the_cells_of_every_rule_are_what_a_group_by_per_rule_makes() {
        let cfg = config();
        let rule = |name: &str, left: &str, right: &str| {
            let (sev, missing) = (Severity::Warning, Missing::Never);
            Rule::new(name, left, "<=", right, &cfg.catalog, sev, missing, (0.0, 0.0)).unwrap()
        };
        let rules = [
            rule(
                "parts",
                "残疾人证核发[类别:视力] + 残疾人证核发[类别:听力]",
                "certificates_issued",
            ),
            rule("fuel", "fuel_amount", "fuel_households * 260 * months"),
            // A cell read twice, and one no row has.
            rule("twice", "fuel_amount + fuel_amount", "残疾人证核发[类别:肢体]"),
            rule("numbers", "1", "2"),
        ];
        let pick = |r: &mut dyn FnMut(u64) -> u64, options: &[Option<&str>]| {
            options[r(options.len() as u64) as usize].map(str::to_string)
        };
        for seed in 1..40u64 {
            let mut r = random(seed * 7919);
            let rows = r(400) as usize;
            let mut cols: [Vec<Option<String>>; 7] = Default::default();
            let (mut years, mut values) = (vec![], vec![]);
            for i in 0..rows {
                // Runs of one report, broken now and then.
                let report = if r(4) == 0 { r(6) } else { (i / 9) as u64 % 6 };
                let townships = [Some("340101001"), Some("340101002"), Some("340102001"), None];
                cols[0].push(pick(&mut r, &[Some("p"), Some("p"), Some("q")]));
                cols[1].push(townships[(report % 4) as usize].map(str::to_string));
                cols[2].push(pick(&mut r, &[Some("340101"), Some("340101"), None]));
                cols[3].push(Some(if report < 3 { "2026-06" } else { "2026-07" }.to_string()));
                cols[4].push(pick(
                    &mut r,
                    &[
                        Some("certificates_issued"),
                        Some("fuel_amount"),
                        Some("fuel_households"),
                        Some("hardship_amount"),
                        None,
                    ],
                ));
                cols[5].push(pick(&mut r, &[None, None, Some("类别"), Some("")]));
                cols[6].push(pick(&mut r, &[None, Some("视力"), Some("听力"), Some("")]));
                years.push([Some(2026), Some(2026), None][r(3) as usize]);
                values.push((r(5) > 0).then(|| r(100) as f64));
            }
            let facts = frame(
                [
                    "program",
                    "township",
                    "county",
                    "period",
                    "indicator",
                    "dimension",
                    "category",
                ],
                cols,
                vec![Column::new("year".into(), years), Column::new("value".into(), values)],
            );
            let all: Vec<&Rule> = rules.iter().collect();
            let together = Cells::of(&facts, &all).unwrap();
            for rule in &rules {
                let alone = Cells::of(&facts, &[rule]).unwrap();
                let want = in_order(grouped(&facts, rule));
                let mut cells = Vec::new();
                collect_cells(&rule.left.1, &mut cells);
                collect_cells(&rule.right.1, &mut cells);
                for cells_of in [&together, &alone] {
                    let got = in_order(cells_of.of_rule(&cells).unwrap());
                    assert!(
                        got.equals_missing(&want),
                        "seed {seed}, rule {}:\n{got}\n{want}",
                        rule.name
                    );
                }
            }
        }
    }

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
