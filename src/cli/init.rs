//! `cmat init DIR`: create a workspace with the default rules.

use super::Exit;
use std::path::{Path, PathBuf};

use clap::Args;

use super::{CommandError, CommandResult, Context};
use crate::workspace::{AutotaskCredentials, CONFIG_FILE, MAPPINGS_DIR};
use cmat_mapping::default_rules;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The folder to create the workspace in (created if needed)
    pub dir: PathBuf,
    /// Autotask BillingCodes id of use type "Recurring Contract Service" (for new Services)
    #[arg(long, value_name = "ID", value_parser = clap::value_parser!(i64).range(1..))]
    pub service_billing_code: Option<i64>,
    /// Autotask BillingCodes id of the "Material Cost Code" for Azure consumption charges
    #[arg(long, value_name = "ID", value_parser = clap::value_parser!(i64).range(1..))]
    pub product_billing_code: Option<i64>,
    /// Autotask Service Level Agreement id for new contracts
    #[arg(long, value_name = "ID", value_parser = clap::value_parser!(i64).range(1..))]
    pub sla: Option<i64>,
    /// Your tenant's Autotask REST base URL, written to cmat.toml (default: looked up from the user name)
    #[arg(long, value_name = "URL")]
    pub autotask_url: Option<String>,
}

/// The three tenant-specific ids the default rules need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultRuleIds {
    pub service_billing_code: i64,
    pub product_billing_code: i64,
    pub service_level_agreement: i64,
}

/// The ids given on the command line; any may be missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GivenIds {
    pub service_billing_code: Option<i64>,
    pub product_billing_code: Option<i64>,
    pub service_level_agreement: Option<i64>,
}

const CONFIG_TEMPLATE: &str = r#"# cmat workspace settings. No secrets here: credentials come from the environment only,
#   CMAT_AUTOTASK_USERNAME, CMAT_AUTOTASK_SECRET, CMAT_AUTOTASK_INTEGRATION_CODE,
#   CMAT_CLOUDMORE_USERNAME, CMAT_CLOUDMORE_PASSWORD, CMAT_CLOUDMORE_CLIENT_SECRET.

[autotask]
# Your tenant's REST base URL; when left out, cmat looks the zone up from the user name.
# base_url = "https://webservices5.autotask.net/atservicesrest/"

[cloudmore]
# The Cloudmore API and your reseller account.
# base_url = "https://api.cloudmore.com/"
# reseller_id = "00000000-0000-0000-0000-000000000000"
# The longest wait for Cloudmore's billing report task, in seconds.
# report_wait_seconds = 900
"#;

const GITIGNORE: &str = ".cmat/\n";

pub fn run(context: &Context, args: InitArgs) -> CommandResult {
    if let Some(url) = &args.autotask_url {
        crate::workspace::check_url(url)?;
    }
    let ids = resolve_ids(
        context,
        GivenIds {
            service_billing_code: args.service_billing_code,
            product_billing_code: args.product_billing_code,
            service_level_agreement: args.sla,
        },
        args.autotask_url.as_deref(),
    )?;
    let rules_file = format!("{MAPPINGS_DIR}/microsoft.cmat");
    let files: [(&str, String); 3] = [
        (CONFIG_FILE, config_text(args.autotask_url.as_deref())),
        (
            rules_file.as_str(),
            default_rules(
                ids.service_billing_code,
                ids.product_billing_code,
                ids.service_level_agreement,
            ),
        ),
        (".gitignore", GITIGNORE.to_string()),
    ];
    write_all_new(&args.dir, &files)?;
    println!("created a cmat workspace in {}", args.dir.display());
    println!("  {CONFIG_FILE}, {rules_file}, .gitignore");
    println!(
        "next: export the CMAT_AUTOTASK_* and CMAT_CLOUDMORE_* credentials, then run `cmat check`"
    );
    Ok(Exit::Success)
}

/// `cmat.toml`: the template, with the tenant's base URL when `--autotask-url` gave it.
fn config_text(autotask_url: Option<&str>) -> String {
    match autotask_url {
        Some(url) => CONFIG_TEMPLATE.replace(
            "# base_url = \"https://webservices5.autotask.net/atservicesrest/\"",
            &format!("base_url = {}", toml_string(url)),
        ),
        None => CONFIG_TEMPLATE.to_string(),
    }
}

/// Writes every file under `dir`, after checking that none exists: a refused init leaves the
/// folder as it was.
fn write_all_new(dir: &Path, files: &[(&str, String)]) -> Result<(), CommandError> {
    for (relative, _) in files {
        let path = dir.join(relative);
        if path.exists() {
            return Err(format!(
                "{} already exists; cmat init never overwrites a file",
                path.display()
            )
            .into());
        }
    }
    for (relative, contents) in files {
        write_new(&dir.join(relative), contents)?;
    }
    Ok(())
}

fn write_new(path: &Path, contents: &str) -> Result<(), CommandError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|error| format!("cannot create {}: {error}", parent.display()))?;
    }
    // create_new: never clobber a file that appeared since the check above.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|error| format!("cannot create {}: {error}", path.display()))?;
    std::io::Write::write_all(&mut file, contents.as_bytes())
        .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    Ok(())
}

/// All three ids: from the flags, else looked up in Autotask when its credentials are set.
fn resolve_ids(
    context: &Context,
    given: GivenIds,
    autotask_url: Option<&str>,
) -> Result<DefaultRuleIds, CommandError> {
    if let GivenIds {
        service_billing_code: Some(service_billing_code),
        product_billing_code: Some(product_billing_code),
        service_level_agreement: Some(service_level_agreement),
    } = given
    {
        return Ok(DefaultRuleIds {
            service_billing_code,
            product_billing_code,
            service_level_agreement,
        });
    }
    if AutotaskCredentials::present_in_env() {
        return lookup_missing_ids(context, given, autotask_url);
    }
    let missing: Vec<&str> = [
        (given.service_billing_code, "--service-billing-code"),
        (given.product_billing_code, "--product-billing-code"),
        (given.service_level_agreement, "--sla"),
    ]
    .into_iter()
    .filter(|(id, _)| id.is_none())
    .map(|(_, flag)| flag)
    .collect();
    Err(format!(
        "missing {}: the default rules need these Autotask ids\n  \
         = hint: find them in Autotask (Admin > Features & Settings > Finance, Accounting & Invoicing > \
         Billing Codes for the two billing codes, Service Level Agreements for the SLA), or set \
         CMAT_AUTOTASK_USERNAME, CMAT_AUTOTASK_SECRET and CMAT_AUTOTASK_INTEGRATION_CODE and \
         cmat init looks them up",
        missing.join(", ")
    )
    .into())
}

/// Finds the ids left out on the command line in Autotask itself (active billing codes of
/// the right use type, the SLA picklist) instead of sending the user to the API explorer,
/// and checks that Contracts have the "Subscription ID" field.
fn lookup_missing_ids(
    context: &Context,
    given: GivenIds,
    autotask_url: Option<&str>,
) -> Result<DefaultRuleIds, CommandError> {
    let found = crate::autotask::discover_ids(&connect(autotask_url)?)?;
    if !found.has_subscription_udf {
        warn_no_subscription_udf(&found.subscription_udf);
    }
    let codes = |choices: &[crate::autotask::BillingCodeChoice]| -> Vec<(i64, String)> {
        choices.iter().map(|choice| (choice.id, choice.name.clone())).collect()
    };
    let slas: Vec<(i64, String)> = found
        .slas
        .iter()
        .filter_map(|sla| sla.as_i64().map(|id| (id, sla.label.clone())))
        .collect();
    Ok(DefaultRuleIds {
        service_billing_code: choose(
            context,
            given.service_billing_code,
            "--service-billing-code",
            "active billing code of use type Recurring Contract Service",
            &codes(&found.service_billing_codes),
        )?,
        product_billing_code: choose(
            context,
            given.product_billing_code,
            "--product-billing-code",
            "active billing code of use type Material Cost Code",
            &codes(&found.product_billing_codes),
        )?,
        service_level_agreement: choose(
            context,
            given.service_level_agreement,
            "--sla",
            "active Service Level Agreement",
            &slas,
        )?,
    })
}

/// A client of the tenant from the environment's credentials, at `--autotask-url` when given
/// (else its zone is looked up).
fn connect(autotask_url: Option<&str>) -> Result<crate::autotask::AutotaskClient, CommandError> {
    let config = crate::workspace::AutotaskConfig {
        base_url: autotask_url.map(str::to_string),
        ..Default::default()
    };
    Ok(crate::autotask::AutotaskClient::connect(
        &config,
        AutotaskCredentials::from_env()?,
        crate::autotask::ClientOptions::default(),
    )?)
}

/// Contracts lack the field cmat finds them by: init goes on (the rules are still written),
/// saying where to add it.
fn warn_no_subscription_udf(udf: &str) {
    eprintln!(
        "warning: Autotask Contracts have no user-defined field \"{udf}\": cmat finds contracts by it.\n  \
         = hint: add it in Autotask: Admin > Features & Settings > Application-wide (Shared) Features > \
         User-Defined Fields > Contracts, Name \"{udf}\""
    );
}

/// The given id, or the only candidate, or the user's pick on a terminal.
fn choose(
    context: &Context,
    given: Option<i64>,
    flag: &str,
    what: &str,
    candidates: &[(i64, String)],
) -> Result<i64, CommandError> {
    if let Some(id) = given {
        return Ok(id);
    }
    let listing =
        candidates.iter().map(|(id, name)| format!("{id} ({name})")).collect::<Vec<_>>().join(", ");
    match candidates {
        [] => Err(format!("Autotask has no {what}; create one, then run cmat init again").into()),
        [(id, name)] => {
            println!("{flag} {id}: the only {what} ({name})");
            Ok(*id)
        }
        _ if !context.stdin_is_terminal => Err(format!(
            "Autotask has several candidates for {flag}: {listing}\n  = hint: pass {flag} with one of them"
        )
        .into()),
        _ => {
            println!("Pick the {what} for {flag}:");
            for (index, (id, name)) in candidates.iter().enumerate() {
                println!("  {}) {id} {name}", index + 1);
            }
            print!("number: ");
            std::io::Write::flush(&mut std::io::stdout())?;
            let mut answer = String::new();
            std::io::stdin().read_line(&mut answer)?;
            answer
                .trim()
                .parse::<usize>()
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|index| candidates.get(index))
                .map(|(id, _)| *id)
                .ok_or_else(|| format!("{:?} is not one of the numbers shown", answer.trim()).into())
        }
    }
}

/// A TOML basic string (quotes and backslashes escaped).
fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}
