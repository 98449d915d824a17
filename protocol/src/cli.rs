//! Output of the command-line tools (`gridcast`, `gridcast-hub`, `gridcast-drill`):
//! `println!` panics when stdout is a closed pipe (`gridcast … | head`); these end the
//! process quietly instead, as a command-line tool should.

/// `println!` to stdout; a closed pipe ends the process with success.
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($t)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}

/// `print!` likewise.
#[macro_export]
macro_rules! out_raw {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = write!(std::io::stdout(), $($t)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
        }
    }};
}
