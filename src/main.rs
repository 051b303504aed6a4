//! The `smppgw` command line: a thin shell over the library.

fn main() -> anyhow::Result<()> {
    Ok(())
}
