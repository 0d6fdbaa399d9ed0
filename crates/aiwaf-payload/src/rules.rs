//! The rule set: our own rules written from attack classes (no third-party rule text), grouped by class,
//! each with a stable id, paranoia level, severity, the normalised form it reads and the locations it
//! applies to. An Aho-Corasick prefilter over class trigger literals decides which classes' regexes run,
//! so ordinary values never reach a regex.

use crate::report::{Class, Severity};
use std::sync::LazyLock;

/// Which normalised form of a value a rule reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    /// Fully decoded text (URL, HTML entities, Unicode folding, NUL removal).
    Text,
    /// SQL form: comments removed, whitespace compressed, lower-case.
    Sql,
    /// Shell command-line form.
    Shell,
    /// Path form.
    Path,
}

/// Scope bits: which locations a rule applies to.
pub(crate) mod scope {
    pub const PATH: u16 = 1;
    pub const QNAME: u16 = 2;
    pub const QVAL: u16 = 4;
    pub const COOKIE: u16 = 8;
    pub const HEADER: u16 = 16;
    pub const BNAME: u16 = 32;
    pub const BVAL: u16 = 64;
    pub const BODY: u16 = 128;
    pub const FILE: u16 = 256;
    pub const UA: u16 = 512;
    pub const NAMES: u16 = QNAME | BNAME;
    pub const VALUES: u16 = QVAL | COOKIE | BVAL | BODY;
    pub const ARGS: u16 = NAMES | VALUES;
    pub const ALL: u16 = PATH | ARGS | HEADER | FILE | UA;
}

/// A rule before compilation.
pub(crate) struct RuleDef {
    pub id: &'static str,
    pub class: Class,
    pub pl: u8,
    pub sev: Severity,
    pub form: Form,
    pub scope: u16,
    pub pattern: &'static str,
}

const C: Severity = Severity::Critical;
const E: Severity = Severity::Error;
const W: Severity = Severity::Warning;
const N: Severity = Severity::Notice;

macro_rules! r {
    ($id:expr, $class:ident, $pl:expr, $sev:expr, $form:ident, $scope:expr, $pat:expr) => {
        RuleDef { id: $id, class: Class::$class, pl: $pl, sev: $sev, form: Form::$form, scope: $scope, pattern: $pat }
    };
}

/// Unix commands that are rarely ordinary words after a shell separator.
pub(crate) const UNIX_STRONG: &str = "cat|tac|nl|id|uname|whoami|wget|curl|nc|ncat|netcat|bash|sh|zsh|ksh|csh|tcsh|dash|ash|\
python[23]?|perl|ruby|php|lua|node|nmap|ping|nslookup|ifconfig|netstat|ls|pwd|chmod|chown|chattr|rm|tftp|telnet|ssh|\
scp|base64|base32|xxd|awk|gawk|nawk|sed|grep|egrep|fgrep|env|printenv|sleep|nohup|useradd|usermod|passwd|crontab|sudo|\
su|systemctl|killall|pkill|strace|ltrace|gcc|tar|socat|openssl|mkfifo|mknod|busybox|hostname|lsof|uptime|traceroute|\
tracert|dig|wc|xargs|hexdump|od|strings|whereis|ip|arp|iptables|apt-get|yum|dnf|wall|chpasswd|ssh-keygen|getent|jjs|\
jrunscript|irb|tclsh|php-cgi|mysql|psql|sqlite3|rsync|unzip|gzip|gunzip|bzip2|7z|ldd|objdump|readelf|gdb|vim|vi|nano|\
md5sum|sha1sum|sha256sum|ps|df|du|mount|umount|chroot|nsenter|unshare|setsid|runuser|pwsh|powershell|cmd|certutil|\
bitsadmin|wmic|net|net1|ipconfig|systeminfo|tasklist|taskkill|reg|mshta|rundll32|regsvr32|cscript|wscript|schtasks|\
msiexec|icacls|cacls|takeown|vssadmin|wevtutil|bcdedit|nltest|dsquery|qwinsta|findstr|forfiles|installutil|regasm|\
msbuild|cmstp|odbcconf|echo|printf|export|unset|exec|eval|kill|timeout|which|locate|head|tail|more|less|touch|mkdir|cp|mv|dir|type";

/// Administration and attack tools whose names are not words of any language: named at the start of
/// a value with an argument, they are a command line (configuration management, container,
/// security and system tools, compilers).
pub(crate) const UNIX_TOOLS: &str = "ansible|ansible-[a-z]+|chef-[a-z]+|salt-call|salt-minion|terraform|visudo|vipw|\
vigr|cscli|crowdsec|aa-[a-z]+|apparmor_parser|setenforce|getenforce|aptitude|dpkg|pacman|htop|atop|iotop|lastlog|\
lastb|faillog|cpulimit|ionice|taskset|c89|c99|clang|rmt|bpftrace|tcpdump|tshark|ettercap|hping3|msfconsole|msfvenom|\
hashcat|mimikatz|psexec|bcdboot|diskpart|fsutil|sysctl|modprobe|insmod|rmmod|lsmod|dmesg|journalctl|chkconfig|setcap|\
getcap|pkexec|kubectl|podman|runc|crictl";

/// Tools that are a command line even named alone (no other meaning at all).
pub(crate) const UNIX_TOOLS_ALONE: &str = "ansible-[a-z]+|chef-[a-z]+|aa-[a-z]+|visudo|vipw|vigr|cscli|apparmor_parser|\
setenforce|msfconsole|msfvenom|mimikatz|hping3|bpftrace|crictl|journalctl";

/// Tools whose names are also words (`perf`, `docker`, `knife`): a command line only with a flag.
pub(crate) const UNIX_TOOLS_FLAGGED: &str = "perf|docker|knife|puppet|snap|rpm|apk|cc|gcc|john|salt|make|nmap|ncat|git";

/// Commands that are also ordinary words; used at paranoia 2 only.
pub(crate) const UNIX_WEAK: &str = "at|batch|call|copy|cut|date|del|expand|file|find|fold|format|halt|history|host|init|\
last|make|md|move|open|print|query|rd|ren|rev|screen|script|set|sort|source|start|time|uniq|watch|who|w|nice|expect|\
alias|route|service|shutdown|reboot|sc|ln|dd|tee|tr|shuf|column|finger|diff|cmp|ed|ex|bc|pr|jq|ftp|sftp|zip|git|svn|docker|kubectl";

/// Separator before a command (shell chaining, substitution, grouping), with optional prefixes.
const CMD_SEP: &str = r"(?:[;|&`]|\$\(|<\(|>\(|\|\||&&|\{)\s*(?:\{\s*|\(\s*)?(?:sudo\s+|nohup\s+|exec\s+|time\s+|timeout\s+\d+\s+)?(?:/?(?:usr/)?(?:local/)?s?bin/)?";

// Patterns built from the command lists once per process (they were `Box::leak`ed on every
// `Inspector::new`: the payload fuzz target's LeakSanitizer found it).
static STRONG_SEP: LazyLock<String> = LazyLock::new(|| {
    format!(r"{CMD_SEP}['\x22]?(?:{UNIX_STRONG}|{UNIX_TOOLS})['\x22]?(?:$|\.exe\b|[\s;|&<>`)(}}]|\$\{{?ifs)")
});
static TOOL_START: LazyLock<String> = LazyLock::new(|| {
    format!(
        r"^\s*['\x22]?(?:(?:{UNIX_TOOLS_ALONE})['\x22]?[\s;|&]*$|(?:{UNIX_TOOLS})['\x22]?\s+(?:-{{1,2}}[a-z]|[\w./-]+(?:[\s;|&]|$))|(?:{UNIX_TOOLS_FLAGGED})\s+-{{1,2}}[a-z][\w-]*(?:[\s=]|$))"
    )
});
static WEAK_SEP: LazyLock<String> = LazyLock::new(|| format!(r"[;|&`]\s*(?:{UNIX_WEAK})(?:$|\.exe\b|[\s;|&<>`)(}}])"));
static START_CHAIN: LazyLock<String> = LazyLock::new(|| {
    format!(
        r"^\s*(?:{UNIX_STRONG})\s+(?:-{{1,2}}[\w-]+\s+)*(?:(?:{UNIX_STRONG})(?:$|[\s;|&<>])|/(?:etc|bin|dev|tmp|proc|var|usr|home|root|sbin)/|(?:https?|ftp)://\S+\s*(?:\||;|>|$))|^\s*(?:time|nohup|sudo|strace|ltrace|env|nice|watch|xargs|timeout\s+\d+)\s+(?:-{{1,2}}[\w-]+\s+)*(?:{UNIX_STRONG})(?:$|[\s;|&<>])"
    )
});
static COMMAND_ARGS: LazyLock<String> = LazyLock::new(|| {
    format!(
        r"(?:^|[;|&\n`])\s*(?:{UNIX_STRONG})\s+(?:-{{1,2}}[a-z][\w-]*\s+)*(?:/[\w.-]+/[\w.-]|~/|\.\.?/[\w.-]|-{{1,2}}(?:version|help)\b)"
    )
});
static START_ARGS: LazyLock<String> =
    LazyLock::new(|| format!(r"^\s*(?:{UNIX_STRONG}|{UNIX_WEAK})\s+(?:-{{1,2}}[a-z]|/|\.{{1,2}}/|~/|\$|\||>|<|\*)"));

pub(crate) fn rule_defs() -> Vec<RuleDef> {
    use scope::*;
    let strong_sep: &'static str = &STRONG_SEP;
    let weak_sep: &'static str = &WEAK_SEP;
    let start_chain: &'static str = &START_CHAIN;
    let command_args: &'static str = &COMMAND_ARGS;
    let start_args: &'static str = &START_ARGS;
    let tool_start: &'static str = &TOOL_START;
    vec![
        // ---------------------------------------------------------------- SQL injection
        r!(
            "sqli.tautology",
            Sqli,
            1,
            C,
            Sql,
            ALL,
            r#"(?:['"`)]|\b\d+)\s*(?:or|xor|and|\|\||&&)\s*(?:not\s+)?\(*\s*(?:['"`]?[\w.@]+['"`]?|['"`]['"`])\s*(?:=|<=>|<>|!=|>=|<=|>|<|\blike\b|\bis\b|\bregexp\b|\brlike\b|\bsounds\s+like\b)\s*\(*\s*['"`]?[\w.@]*['"`]?"#
        ),
        r!(
            "sqli.tautology",
            Sqli,
            1,
            C,
            Sql,
            ALL,
            r#"['"`]\s*(?:(?:or|xor|and)\b|\|\||&&)\s*(?:not\s+)?(?:true|false|null|\d+|['"`][^'"`]*['"`])?\s*(?:$|--|#|;|/\*)"#
        ),
        r!(
            "sqli.tautology",
            Sqli,
            1,
            C,
            Sql,
            ALL,
            r#"\b(?:or|and)\s+(?:not\s+)?\(*\s*(\d+|'[^']*'|"[^"]*")\s*(?:=|<=>|like)\s*(\d+|'[^']*'|"[^"]*")\s*\)*\s*(?:$|--|#|;|/\*|\)|and\b|or\b|limit\b|order\b|group\b)"#
        ),
        r!("sqli.union", Sqli, 1, C, Sql, ALL, r"\bunion\s*(?:all\s*|distinct\s*)?\(*\s*select\b"),
        r!(
            "sqli.quote_statement",
            Sqli,
            1,
            C,
            Sql,
            ALL,
            r#"['"`)]\s*;?\s*(?:select\s.*\bfrom\b|select\s+(?:@@|\d|sleep|pg_sleep|benchmark|version|user|database)|insert\s+into\b|update\s+[\w.`"\[\]]+\s+set\b|delete\s+from\b|drop\s+(?:table|database|schema|user|view|procedure|function)\b|truncate\s+table\b|exec(?:ute)?\s+(?:xp_|sp_|master|\()|declare\s+@|shutdown\b|waitfor\b|(?:order|group)\s+by\s+\d|having\b|procedure\s+analyse|limit\s+\d+\s*,\s*\d+\s*$)"#
        ),
        r!(
            "sqli.stacked",
            Sqli,
            1,
            C,
            Sql,
            ALL,
            r#";\s*(?:drop\s+(?:table|database|schema|user|view|procedure|function|index)\b|delete\s+from\b|insert\s+into\b|update\s+[\w.`"\[\]]+\s+set\b|truncate\s+table\b|alter\s+(?:table|user|database)\b|create\s+(?:table|user|database|procedure|function)\b|exec(?:ute)?\s+(?:xp_|sp_|master\.)|declare\s+@|shutdown\b|select\s+.{0,200}?\bfrom\b|select\s+(?:@@|\d|sleep|pg_sleep|benchmark|load_file|version\s*\(|user\s*\(|database\s*\())"#
        ),
        r!(
            "sqli.time_based",
            Sqli,
            1,
            C,
            Sql,
            ALL,
            r#"\b(?:sleep|pg_sleep|benchmark)\s*\(\s*[\d'"(@]|\bwaitfor\s+(?:delay|time)\s+['"\d]|\bdbms_pipe\.receive_message\b|\bdbms_lock\.sleep\b|\brandomblob\s*\(\s*\d{5,}|\bpg_sleep\b"#
        ),
        r!(
            "sqli.error_based",
            Sqli,
            1,
            C,
            Sql,
            ALL,
            r"\b(?:extractvalue|updatexml|xmltype|utl_inaddr\.get_host_\w+|ctxsys\.drithsx\.sn|dbms_xdb_version\.\w+|geometrycollection|multilinestring|multipolygon|multipoint|linestring|polygon|name_const|gtid_subset|json_keys)\s*\(|\bexp\s*\(\s*~|\bfloor\s*\(\s*rand\s*\("
        ),
        r!(
            "sqli.schema_probe",
            Sqli,
            1,
            C,
            Sql,
            ALL,
            r"\b(?:information_schema|mysql\.(?:user|db|proc)|sysobjects|syscolumns|sysusers|sys\.(?:objects|tables|columns|databases|sql_logins|server_principals|schemas)|pg_catalog|pg_shadow|pg_user|pg_database|pg_namespace|sqlite_master|sqlite_schema|sqlite_temp_master|all_tables|all_tab_columns|all_users|user_tables|user_tab_columns|dba_users|dba_tables|msysobjects|msysaccessobjects|msysqueries|master\.\.sysdatabases|master\.dbo\.\w+|sys\.dm_\w+)\b"
        ),
        r!(
            "sqli.file_access",
            Sqli,
            1,
            C,
            Sql,
            ALL,
            r"\binto\s+(?:out|dump)file\b|\bload_file\s*\(|\bload\s+data\s+(?:local\s+)?infile\b|\butl_(?:file|http)\.|\bxp_(?:cmdshell|regread|regwrite|dirtree|fileexist|servicecontrol|availablemedia|makecab|ntsec)\b|\bsp_(?:oacreate|oamethod|executesql|execute|makewebtask|addextendedproc|configure|password|adduser|addlogin|addsrvrolemember)\b|\bopenrowset\s*\(|\bopendatasource\s*\(|\bopenquery\s*\(|\bcopy\s+\w+\s+(?:from|to)\s+program\b|\blo_(?:import|export)\s*\(|\bdbms_java\."
        ),
        r!(
            "sqli.obfuscation",
            Sqli,
            1,
            C,
            Sql,
            ALL,
            r"\b(?:char|chr|nchar)\s*\(\s*\d+\s*\)\s*(?:\+|\|\||,)\s*(?:char|chr|nchar)\s*\(|\b(?:char|chr|nchar)\s*\(\s*\d+\s*(?:,\s*\d+\s*){2,}\)|\bconcat(?:_ws)?\s*\(.{0,80}?(?:0x[0-9a-f]{2,}|char\s*\(|@@|\bselect\b)|\b(?:unhex|from_base64)\s*\(\s*['0]|\bcast\s*\(\s*0x[0-9a-f]+|\bconvert\s*\(\s*(?:int|varchar|nvarchar)\s*,\s*(?:@@|\(?\s*select\b|db_name|user|system_user)"
        ),
        r!(
            "sqli.system_vars",
            Sqli,
            1,
            C,
            Sql,
            ALL,
            r"@@(?:version|datadir|hostname|basedir|tmpdir|servername|language|spid|identity|global|session)\b|\b(?:current_user|session_user|system_user|db_name|suser_sname|user_name|host_name|schema_name|version|database)\s*\(\s*\)\s*(?:$|[,)=;]|--|#|\|\||and\b|or\b|from\b)"
        ),
        r!(
            "sqli.group_order_probe",
            Sqli,
            1,
            C,
            Text,
            ALL,
            r#"['"`)]\s*(?:/\*.*?\*/\s*)*(?:order|group)\s+by\s+\d+|\border\s+by\s+\d+\s*(?:--|#|/\*)|\bhaving\s+\d+\s*=\s*\d+"#
        ),
        // a string closed, a keyword, and the rest of the statement commented out at the very end
        r!(
            "sqli.quote_comment_tail",
            Sqli,
            1,
            C,
            Text,
            ALL,
            r#"['"`]\s*\)*\s*(?:or|and|xor|not|collate|like|rlike|regexp|between|is|in|div|mod|union|order|group|having|limit|procedure|into)\b.{0,100}?(?:--|\W#)\s*$"#
        ),
        r!(
            "sqli.comment_after_quote",
            Sqli,
            1,
            E,
            Text,
            ALL,
            r#"['"`]\s*\)*\s*(?:--[\s\x00-]|--$|#|/\*|;\s*(?:--|#|$)|\x00)"#
        ),
        r!(
            "sqli.boolean_after_quote",
            Sqli,
            1,
            C,
            Sql,
            ALL,
            r#"['"`)]\s*(?:and|or|xor|&&|\|\|)\s+(?:not\s+)?\(*\s*(?:\d+\s*(?:=|<|>|<>|!=|between\b|like\b|in\s*\()|['"][^'"]*['"]\s*(?:=|<|>|like)|sleep\b|benchmark\b|exists\s*\(|select\b|if\s*\(|ascii\s*\(|substr(?:ing)?\s*\(|mid\s*\(|length\s*\(|char\s*\(|ord\s*\(|true\b|false\b|null\b|\(\s*select|updatexml|extractvalue|\d+\s*$)"#
        ),
        r!(
            "sqli.tautology",
            Sqli,
            1,
            C,
            Sql,
            ALL,
            r"(?:and|or|xor)\s+\(*\s*\d+\s*(?:=|<>|!=|>|<)\s*\d+\s*\)*\s*(?:$|--|#|;|\))"
        ),
        r!(
            "sqli.pg_cast",
            Sqli,
            1,
            C,
            Sql,
            ALL,
            r"::\s*(?:int|integer|int4|int8|bigint|text|bool|boolean|jsonb?|varchar|numeric|regclass|float|real|bytea|xml)\b"
        ),
        r!("sqli.quote_operator", Sqli, 1, C, Text, ALL, r#"['"`]\s*(?:[&^|]|\|\|)\s*\w+\s*(?:--|#|/\*)"#),
        r!(
            "sqli.quoted_comparison",
            Sqli,
            1,
            E,
            Sql,
            ALL,
            r#"['"`][^'"`]{0,30}['"`]\s*(?:not\s+)?(?:=|<>|!=|<=>|\blike\b|\bregexp\b|\brlike\b)\s*['"`]"#
        ),
        r!(
            "sqli.function_call",
            Sqli,
            1,
            E,
            Sql,
            ALL,
            r"\b(?:benchmark|sleep|sysdate|strcmp|hex|unhex|ascii|char|concat|concat_ws|group_concat|substring|substr|mid|ord|version|database|schema|current_user|session_user|system_user|load_file|updatexml|extractvalue|make_set|elt|field|find_in_set|instr|locate|position|lpad|rpad|reverse|soundex|md5|sha1|crc32|compress|uncompress|from_base64|to_base64|json_extract|jsonb_\w+|pg_\w+|utl_\w+|dbms_\w+|xmltype|nvl|nvl2|decode|ifnull|iif|isnull|coalesce)\s*\("
        ),
        r!(
            "sqli.keyword_function",
            Sqli,
            2,
            W,
            Sql,
            ALL,
            r"\b(?:ascii|substring|substr|mid|length|char_length|hex|unhex|ord|conv|bin|md5|sha1|lower|upper|group_concat|concat|if|ifnull|iif|coalesce|nullif|case)\s*\(.{0,60}\bselect\b"
        ),
        r!("sqli.select_from", Sqli, 2, W, Sql, ALL, r"\bselect\b.{1,100}?\bfrom\b"),
        r!("sqli.hex_literal", Sqli, 2, W, Sql, ALL, r"(?:=|\(|,|\bin\b|\blike\b)\s*0x[0-9a-f]{6,}\b"),
        // ---------------------------------------------------------------- XSS
        r!("xss.script_tag", Xss, 1, C, Text, ALL, r"<\s*/?\s*script\b|<\s*script[\s>/]"),
        r!(
            "xss.event_handler",
            Xss,
            1,
            C,
            Text,
            ALL,
            r#"<\s*[a-z!/?][^>]*?[\s"'/`;]on[a-z]{3,30}\s*=|["'`]\s*/?\s*on[a-z]{3,30}\s*="#
        ),
        r!(
            "xss.event_handler",
            Xss,
            1,
            C,
            Text,
            ALL,
            r"\bon(?:error|load|unload|mouse(?:over|out|down|up|move|enter|leave|wheel)|click|dblclick|focus(?:in|out)?|blur|key(?:up|down|press)|submit|change|input|toggle|begin|end|animation(?:start|end|iteration)|transition(?:end|start|run|cancel)|pointer[a-z]+|touch[a-z]+|drag[a-z]*|drop|copy|cut|paste|play|playing|pause|show|select|invalid|reset|search|abort|auxclick|contextmenu|hashchange|message|resize|scroll|wheel|beforeunload|pageshow|pagehide|popstate|readystatechange|afterprint|beforeprint|loadstart|loadend|progress|canplay|canplaythrough|durationchange|volumechange|seeked|seeking|waiting|storage|bounce|finish|activate|beforeactivate|beforecopy|beforecut|beforepaste|filterchange|propertychange|repeat|formchange|forminput|start)\s*="
        ),
        r!(
            "xss.script_uri",
            Xss,
            1,
            C,
            Text,
            ALL,
            r"(?:j\s*a\s*v\s*a|v\s*b|l\s*i\s*v\s*e|m\s*o\s*c\s*h\s*a)\s*s\s*c\s*r\s*i\s*p\s*t\s*:|\bdata\s*:\s*(?:text/html|text/javascript|text/xml|application/(?:x-)?javascript|application/xhtml|image/svg\+xml)"
        ),
        r!(
            "xss.dangerous_tag",
            Xss,
            1,
            C,
            Text,
            ALL,
            r"<\s*(?:iframe|frame|frameset|object|embed|applet|base|meta|isindex|xss|import|vmlframe|handler|portal)\b"
        ),
        r!(
            "xss.html_tag",
            Xss,
            1,
            E,
            Text,
            ALL,
            r"<\s*(?:svg|math|style|link|form|animate|set|layer|ilayer|bgsound|xml|marquee|template|video|audio|details|body|input|button|textarea|keygen|source|track|html|dialog|image|img\s[^>]*\bsrc\s*=\s*['`]?\s*(?:x|#|/?\s*>|\s))\b"
        ),
        r!("xss.html_tag", Xss, 2, N, Text, ALL, r"<\s*/?\s*[a-z][a-z0-9-]*[\s/>]"),
        // an event-handler attribute written into an argument's name (reflected as an attribute)
        r!("xss.handler_in_name", Xss, 1, C, Text, NAMES, r#"(?:^|[\s"'/])on[a-z]{4,}\s*="#),
        r!(
            "xss.js_sink",
            Xss,
            1,
            C,
            Text,
            ALL ^ PATH,
            r#"\bdocument\s*\.\s*(?:cookie|write(?:ln)?|domain|location)\b|\bwindow\s*\.\s*(?:location|open|name)\b|\b(?:self|top|parent|globalthis|frames)\s*\[\s*['"`]|\.(?:inner|outer)html\s*=|\.insertadjacenthtml\b|\bstring\s*\.\s*fromcharcode\b|\bfromcharcode\s*\(|\beval\s*\(|\b(?:alert|prompt|confirm)\s*(?:\(\s*(?:\d|['"`/]|document|window|this|self|top|\))|`)|\bset(?:timeout|interval)\s*\(\s*['"`]|\bnew\s+function\s*\(|\batob\s*\(|\blocation\s*\.\s*(?:href|hash|replace|assign)\b|\blocation\s*=\s*['"`]|\[\s*['"`]constructor['"`]\s*\]|\bimport\s*\(\s*['"`]"#
        ),
        r!("xss.js_sink", Xss, 1, E, Text, ALL, r"\b(?:alert|prompt|confirm)\s*\(\s*[a-z_$][\w.$]*\s*\)"),
        r!(
            "xss.css_injection",
            Xss,
            1,
            C,
            Text,
            ALL,
            r#"(?:style\s*=|:)\s*[^;]{0,60}?\bexpression\s*\(|-moz-binding\s*:|\bbehavior\s*:\s*url|@import\s+(?:url\s*\(|['"])|\burl\s*\(\s*['"]?\s*(?:javascript|vbscript|data)\s*:"#
        ),
        r!(
            "xss.html_breakout",
            Xss,
            1,
            E,
            Text,
            ALL,
            r#"['"]\s*/?>\s*<\s*[a-z]|-->\s*<\s*[a-z]|</\s*(?:title|textarea|style|noscript|xmp|iframe|noembed|plaintext|template|option|select)\s*>\s*<"#
        ),
        // ---------------------------------------------------------------- path traversal / LFI
        r!("lfi.traversal", Traversal, 1, C, Path, ALL, r"(?:^|/|=|\s|:)\.{2,}(?:/|;/|$)|\.\.;/|/\.{2,}/"),
        r!(
            "lfi.sensitive_file",
            Traversal,
            1,
            C,
            Path,
            ALL ^ PATH,
            r"(?:^|/|\s|=|\b)(?:etc/(?:passwd|shadow|group|gshadow|hosts|issue|motd|fstab|crontab|sudoers|profile|bashrc|hostname|resolv\.conf|httpd/|apache2?/|nginx/|mysql/|php\d?/|ssh/|master\.passwd|security/|environment|network|inetd\.conf|exports|shells|aliases|ld\.so\.|os-release|lsb-release|redhat-release|debian_version|init\.d|rc\.d|cron|pam\.d|ldap|samba|x11)|proc/(?:self|\d+)/(?:environ|cmdline|fd|maps|mem|status|cwd|exe|root|stat|mounts|net)|proc/(?:version|cpuinfo|meminfo|mounts|net/|sched_debug|partitions)|sys/(?:class|kernel|devices|firmware|module|power|block|bus)/|var/log/|var/(?:run|lib|mail|spool|www|db|adm|cache)/|(?:boot|win|system)\.ini\b|windows/(?:system32|win\.ini|repair|debug|panther|system\.ini|php\.ini)|winnt/|system32/|inetpub/|\.ssh/(?:id_\w+|authorized_keys|known_hosts)|\.(?:htaccess|htpasswd|bash_history|bash_profile|bashrc|zsh_history|mysql_history|psql_history|git/(?:config|head)|svn/entries|aws/credentials|docker/config\.json|ds_store|npmrc|netrc|pgpass)\b|web\.config\b|wp-config\.php|localsettings\.php|usr/local/(?:apache|etc|lib)|usr/(?:bin|sbin|lib)/|bin/(?:ba|z|k|c|da)?sh\b|dev/(?:tcp|udp|null|zero|random|shm)\b|/(?:tmp|root|home)/\.)"
        ),
        r!(
            "lfi.wrapper",
            Traversal,
            1,
            C,
            Text,
            ALL,
            r"\b(?:php|file|expect|zip|phar|glob|compress\.zlib|compress\.bzip2|zlib|rar|ogg|ssh2(?:\.\w+)?|input|jar|netdoc|data)://"
        ),
        r!(
            "lfi.windows_path",
            Traversal,
            1,
            C,
            Path,
            ALL ^ PATH,
            r"(?:^|[\s=])[a-z]:/(?:windows|winnt|boot\.ini|inetpub|program files|users|documents and settings)\b|%(?:systemroot|windir|comspec|userprofile|appdata)%"
        ),
        // ---------------------------------------------------------------- RFI / SSRF
        r!(
            "rfi.url_trailing_qmark",
            Rfi,
            1,
            C,
            Text,
            VALUES,
            r"(?:^|[=\s])\s*(?:https?|ftps?|php|data|gopher|dict)://[^\s?]+(?:\?\s*$|\?\?)"
        ),
        r!(
            "rfi.url_ip",
            Rfi,
            1,
            C,
            Text,
            VALUES,
            r"^\s*(?:https?|ftps?)://(?:[^/@?#\s]*@)?(?:(?:\d{1,3}\.){3}\d{1,3}|\[?[0-9a-f]{1,4}:[0-9a-f:]*:[0-9a-f]{0,4}\]?)(?:[:/?#]|$)"
        ),
        r!(
            "rfi.script_url",
            Rfi,
            1,
            E,
            Text,
            VALUES,
            r"(?:^|=)\s*(?:https?|ftps?)://[^?#\s]+\.(?:txt|php\d?|phtml|pl|py|cgi|sh|asp|aspx|jsp|exe|inc|ps1|bat|war|jar|rb|bin|elf|dll|so)(?:[?#]|$)"
        ),
        r!(
            "rfi.ssrf_internal",
            Rfi,
            1,
            C,
            Text,
            VALUES,
            r"^\s*(?:[a-z][\w+.-]*:)?//(?:[^/@?#\s]*@)?(?:localhost|127\.\d+\.\d+\.\d+|0\.0\.0\.0|0x7f[0-9a-f.]*|2130706433|017700000001|\[[0:]*:1?\]|\[::ffff:|169\.254\.\d+\.\d+|0177\.)|\b(?:169\.254\.169\.254|metadata\.google\.internal|metadata\.azure\.com|kubernetes\.docker\.internal|kubernetes\.default(?:\.svc)?|100\.100\.100\.200|instance-data)\b"
        ),
        r!(
            "rfi.ssrf_scheme",
            Rfi,
            1,
            C,
            Text,
            VALUES,
            r"^\s*(?:gopher|dict|ldaps?|tftp|jar|netdoc|sftp|pop3s?|imaps?|smtps?|telnet|rtsp|rmi|iiop|nfs|smb)://"
        ),
        r!(
            "rfi.ssrf_scheme",
            Rfi,
            1,
            E,
            Text,
            VALUES,
            r"^\s*data:(?:text|application)/|^\s*https?://[^/?#\s]*[@&#][^/?#\s]*@"
        ),
        r!("rfi.offsite_url", Rfi, 3, W, Text, VALUES, r"^\s*(?:https?|ftps?)://"),
        // ---------------------------------------------------------------- OS command injection
        r!("cmdi.unix", Cmdi, 1, C, Shell, ALL ^ UA, strong_sep),
        r!("cmdi.unix", Cmdi, 2, C, Shell, ALL ^ UA, weak_sep),
        r!("cmdi.command_chain", Cmdi, 1, C, Shell, ALL, start_chain),
        r!("cmdi.command_start", Cmdi, 2, C, Shell, ALL ^ UA, start_args),
        r!("cmdi.command_args", Cmdi, 1, C, Shell, ALL, command_args),
        r!("cmdi.command_start", Cmdi, 1, C, Shell, ALL ^ UA ^ HEADER, tool_start),
        // shell-only syntax: `cd` to a directory in a chain, `alias name=`, directory-stack tilde
        r!(
            "cmdi.shell_syntax",
            Cmdi,
            1,
            C,
            Shell,
            ALL ^ UA,
            r"(?:^|[;|&`])\s*cd\s+(?:/|\.\.|~)[\w./-]*\s*(?:[;|&]|$)|^\s*alias\s+(?:[+-]\w+\s+)*[\w.-]+=|(?:^|[\s;|&])~[+-]\d+(?:$|[\s/;|&])|\$\[[\d\s+*/%-]*\]"
        ),
        r!(
            "cmdi.shell_path",
            Cmdi,
            1,
            C,
            Shell,
            ALL ^ PATH,
            r"(?:^|[\s;|&`(=<>])/?(?:usr/)?(?:local/)?s?bin/[a-z][\w.+-]*(?:$|[\s;|&<>`)])|(?:^|[\s;|&`(=<>])/?(?:usr/)?(?:local/)?s?bin/(?:[a-z]*sh|cat|id|nc|ncat|wget|curl|python\d?|perl|ruby|php|busybox|echo|ls|uname|whoami|rm|chmod)\b|[a-z](?:``|\$\(\s*\)|\$\{\s*\}|[<>]\(\s*\))(?:[a-z]|\s|$)|\bfind\s+\S+.{0,80}?\s-exec(?:dir)?\s|/dev/(?:tcp|udp)/|\$\{?ifs\b|\$\{?(?:shell|bash|0)\}?\s+-c\b|\$\{(?:path|home|shell|pwd|user)[#%:/}]|\$\[\]|\$\(\(|\$\{#|\$'\\x"
        ),
        r!(
            "cmdi.substitution",
            Cmdi,
            1,
            C,
            Text,
            ALL ^ UA,
            r"\$\(\s*[a-z/.][^)]{0,80}\)|`\s*[a-z/.][\w./ -]{0,60}`|<\(\s*[a-z/][^)]{0,60}\)"
        ),
        r!(
            "cmdi.windows",
            Cmdi,
            1,
            C,
            Shell,
            ALL ^ UA,
            r"\bcmd(?:\.exe)?\s*/[ckr]\b|\bpowershell(?:\.exe)?\s+-|\b(?:iex|invoke-expression|invoke-webrequest|iwr|invoke-restmethod|irm|start-process|invoke-command|invoke-item|invoke-wmimethod|new-object\s+(?:-\w+\s+)?(?:system\.)?net\.webclient|downloadstring|downloadfile|frombase64string|-encodedcommand|-enc\s+[a-z0-9+/=]{12,})\b|\b(?:invoke|start|new|get|set|remove|copy|out|add|stop|restart|convertto|convertfrom)-(?:webrequest|restmethod|expression|process|object|content|item|childitem|wmiobject|ciminstance|service|itemproperty|file|command|alias|localuser|localgroupmember|mppreference|executionpolicy|psdrive|acl|securestring|base64|variable)\b|%comspec%|\bfor\s+/[dflr]\b[^\n]{0,100}\bin\s*\(|\bfor\s+(?:/[dflr]\s+)?%%?\S{1,3}\s+in\s*\(|\bif\s+(?:/i\s+)?(?:not\s+)?(?:exist|defined|errorlevel|%\S+%?\s*(?:==|equ|neq|lss|leq|gtr|geq)|\S+\s*==)|\bc:/windows/system32/\w+"
        ),
        // ---------------------------------------------------------------- template injection
        r!(
            "ssti.arithmetic",
            Ssti,
            1,
            C,
            Text,
            ALL,
            r#"\{\{\s*[\d'"]+\s*[*+/%-]\s*[\d'"]+\s*\}\}|\$\{\s*\d+\s*[*+/%-]\s*\d+\s*\}|#\{\s*\d+\s*[*+/%-]\s*\d+\s*\}|<%=?\s*\d+\s*[*+/%-]\s*\d+\s*%>|\{\{=|\*\{\s*\d+\s*[*+]\s*\d+\s*\}|@\(\s*\d+\s*\*\s*\d+\s*\)|\{\s*\d+\s*\*\s*\d+\s*\}|\[\[\s*\d+\s*\*\s*\d+\s*\]\]|\{#\s*\d+\s*\*"#
        ),
        r!(
            "ssti.object_walk",
            Ssti,
            1,
            C,
            Text,
            ALL,
            r#"\{\{.{0,200}?(?:\bconfig\b|\bself\b|\brequest\b|\.__|\bmro\b|subclasses|\bglobals\b|builtins|\bimport\b|popen|\bos\.|\blipsum\b|\bcycler\b|\bjoiner\b|\bnamespace\b|getattr|\|\s*attr|\[\s*['"]_|\bsystem\b|\bexec\b|\beval\b|_self\.env|registerundefinedfiltercallback|getfilter|constructor|\bprocess\b)|__(?:class|mro|subclasses|globals|builtins|init|import|base|bases|dict|getattribute|reduce|code|func_globals)__"#
        ),
        r!(
            "ssti.statement",
            Ssti,
            1,
            C,
            Text,
            ALL,
            r"\{%.{0,200}?(?:\bimport\b|\bos\.|popen|\bsystem\b|\bexec\b|\beval\b|__|\bconfig\b|\brequest\b|subprocess|\bopen\s*\(|\bphp\b|\bpython\b|\bdebug\b)|<%[=#-]?\s*[\w@$].{0,200}?%>|<#(?:assign|import|include|list|if)\b|freemarker\.template|\$ex\.exec|#set\s*\(\s*\$|\$class\.inspect|#foreach\s*\(|__\$\{.{1,200}?\}__|\{php\}|\{\{\s*_self\b"
        ),
        r!("ssti.statement", Ssti, 2, W, Text, ALL, r"\{%\s*[a-z]+\b.{0,200}%\}"),
        r!(
            "ssti.expression",
            Ssti,
            1,
            C,
            Text,
            ALL,
            r"\$\{.{0,100}?(?:\bclass\b|getclass|runtime|forname|\bexec\b|\bt\s*\(|\bnew\s|\bsystem\b|@|\.\w+\s*\()|#\{.{0,100}?(?:\bt\s*\(|runtime|getclass|\bexec\b|system|\.\w+\s*\()|\*\{.{0,100}?\bt\s*\("
        ),
        // ---------------------------------------------------------------- XXE
        r!(
            "xxe.entity",
            Xxe,
            1,
            C,
            Text,
            ALL,
            r#"<!entity\s+%?\s*[\w.:-]+\s+(?:system|public)\b|<!doctype\s[^>]*\[\s*<!entity|<!doctype\s+[\w.:-]+\s+(?:system|public)\s+['"]|<xi:include\b|\bxmlns:xi\s*=|<!entity\s+%"#
        ),
        r!("xxe.entity", Xxe, 1, E, Text, ALL, r"<!entity\b|<!doctype\s+[\w.:-]+\s*\["),
        // ---------------------------------------------------------------- CRLF / splitting / smuggling
        r!(
            "crlf.header_injection",
            Crlf,
            1,
            C,
            Text,
            ALL ^ BODY,
            r"[\r\n][\t ]*(?:set-cookie|location|content-(?:type|length|disposition|security-policy)|refresh|x-[\w-]+|access-control-[\w-]+|host|cookie|transfer-encoding|cache-control|link|connection|authorization|www-authenticate)[\t ]*:"
        ),
        // a line break then a mail-protocol command (SMTP, POP3, IMAP): a value that reaches a mail
        // server's conversation. Query values, cookies and headers only: a textarea's lines may
        // start with any word.
        r!(
            "crlf.mail_command",
            Crlf,
            1,
            C,
            Text,
            QVAL | COOKIE | HEADER,
            r"[\r\n][\t ]*(?:(?:helo|ehlo)\s+[\w.-]+|mail\s+from\s*:.*|rcpt\s+to\s*:.*|auth\s+[\w-]+(?:\s+\S+)?|apop\s+\S+\s+[0-9a-f]{32}|(?:user|pass|vrfy|expn)\s+\S+|(?:list|retr|dele)\s+\d+|top\s+\d+\s+\d+|data|list|uidl|capa|stls|starttls|quit|rset|noop|a\d+\s+(?:login|select|fetch|store|list|uid)\b.*)[\t ]*(?:$|[\r\n])"
        ),
        r!(
            "crlf.response_splitting",
            Crlf,
            1,
            C,
            Text,
            ALL,
            r"[\r\n]\s*http/\d(?:\.\d)?\s+\d{3}\b|\r\n\r\n\s*<\s*(?:html|script)"
        ),
        r!(
            "crlf.request_smuggling",
            Crlf,
            1,
            C,
            Text,
            ALL,
            r"(?:^|[\r\n])\s*(?:get|post|put|delete|head|options|connect|patch|trace|propfind)\s+\S+\s+http/\d(?:\.\d)?\s*(?:[\r\n]|$)"
        ),
        r!("crlf.path_crlf", Crlf, 1, C, Text, PATH, r"[\r\n]"),
        // ---------------------------------------------------------------- NoSQL
        r!(
            "nosqli.operator_name",
            Nosqli,
            1,
            C,
            Text,
            NAMES | COOKIE,
            r"(?:^|\[)\$(?:ne|eq|gt|gte|lt|lte|in|nin|regex|where|exists|expr|or|and|not|nor|elemmatch|all|size|type|mod|text|jsonschema|function|accumulator|lookup|merge|out|options|comment)(?:\]|$)"
        ),
        r!(
            "nosqli.operator_value",
            Nosqli,
            1,
            C,
            Text,
            VALUES,
            r#"["'\[{,]\s*\$(?:ne|eq|gt|gte|lt|lte|in|nin|regex|where|exists|expr|or|and|nor|not|elemmatch|function|accumulator)\b\s*["'\]]?\s*[:=\]]|\bdb\.[\w.]+\.(?:find|findone|insert|update|remove|drop|aggregate|count)\s*\(|;\s*return\s+(?:true|1|this)\b|\|\|\s*['"]?\d['"]?\s*==\s*['"]?\d|\bthis\.\w+\s*(?:==|!=|\.match\s*\()|\bsleep\s*\(\s*\d{4,}\s*\)"#
        ),
        // ---------------------------------------------------------------- code injection
        r!("php.open_tag", CodeInjection, 1, C, Text, ALL, r"<\?(?:php\b|=|\s)|<\?xml\s*[^\s\w]|<\?xml\s+[^v\s]"),
        r!(
            "php.function_call",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r#"(?:shell_exec|passthru|proc_open|pcntl_exec|pcntl_fork|base64_decode|gzinflate|gzuncompress|gzdecode|str_rot13|convert_uudecode|file_get_contents|file_put_contents|call_user_func(?:_array)?|create_function|phpinfo|unserialize|highlight_file|show_source|php_uname|move_uploaded_file|preg_replace|register_shutdown_function|register_tick_function|array_map|array_filter|array_walk|usort|uasort|uksort|iterator_apply|forward_static_call(?:_array)?|mb_ereg_replace|posix_\w+|proc_\w+|ini_set|ini_get|ini_restore|set_include_path|getenv|putenv|escapeshellcmd|escapeshellarg|get_defined_vars|get_defined_functions|var_dump|var_export|print_r|debug_zval_dump|fsockopen|pfsockopen|stream_socket_client|curl_exec|curl_init|parse_str|extract|\bpopen|\bfopen|\bfwrite|\bfputs|\breadfile|\bsymlink|\bunlink|\brmdir|\bmkdir|\bchmod|\bassert|\binclude(?:_once)?|\brequire(?:_once)?|\bhex2bin|\bstrrev|\bdl)\s*\("#
        ),
        r!(
            "php.function_call",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r#"\b(?:system|exec|shell_exec|passthru|eval)\s*\(\s*['"$`(]|\b(?:chr|ord|substr|strlen|implode|explode|sprintf|urldecode|rawurldecode|base64_encode|md5|sha1|crc32|strtolower|strtoupper|is_array|is_string|is_numeric|is_object|array_\w+|str_\w+|get_\w+|func_\w+|ob_start|session_\w+)\s*\(\s*(?:\)|\d+\s*\)|['"$])"#
        ),
        r!(
            "php.variables",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r"\$_(?:get|post|cookie|request|server|files|env|session)\b|\$globals\b|\$http_\w+_vars\b|\$\{\s*_(?:get|post|request|cookie|server)\b|\$_\s*\[|\$\{[^}]{1,40}\}\s*\(|\$\w+\s*\{\s*\d+\s*\}"
        ),
        r!(
            "php.variable_call",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r#"\$[a-z_][\w]*\s*(?:\[[^\]]{0,40}\]\s*|\{[^}]{0,40}\}\s*)*\(\s*(?:['"$)]|\w+\s*\))|::\s*\$\w+\s*\("#
        ),
        // PHP functions an attacker calls, with the evasions code allows and prose does not: a
        // comment, a line break or a run of blanks between the name and `(`. Names that are also
        // English words need such an evasion (or no blank at all); the others match with any blank.
        r!(
            "php.function_call",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r#"\b(?:file|system|exec|eval|assert|extract|unpack|printf|header|include|require|readfile|glob|link|mail|putenv|chr|copy|rename|touch|opendir|dir|ftp_connect|escapeshellarg|highlight_file|show_source|serialize|unserialize)(?:\(|(?:\s*(?:/\*.*?\*/|//[^\n]*\n|#[^\n]*\n|["'])\s*|[\r\n\t\x0b\x0c]\s*|\x20{2,})+\()[^)]{0,200}\)"#
        ),
        r!(
            "php.function_call",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r#"\b(?:shell_exec|passthru|proc_open|proc_nice|proc_terminate|popen|pcntl_\w+|posix_\w+|filegroup|fileowner|fileperms|file_exists|is_readable|is_writable|is_writeable|is_executable|is_file|is_dir|bzdecompress|bzopen|bzread|zlib_decode|zlib_encode|gzuncompress|gzinflate|gzdecode|gzopen|gzread|gzfile|readgzfile|str_rot13|base64_decode|convert_uudecode|hex2bin|strrev|create_function|call_user_func\w*|func_get_args|get_defined_vars|array_map|array_walk\w*|array_filter|array_reduce|iterator_apply|register_shutdown_function|register_tick_function|set_error_handler|set_exception_handler|spl_autoload_register|preg_replace\w*|mb_ereg_replace\w*|ob_start|assert_options|parse_ini_file|parse_ini_string|parse_str|simplexml_load_\w+|stream_socket_\w+|fsockopen|pfsockopen|socket_create|socket_connect|curl_exec|curl_init|curl_multi_exec|move_uploaded_file|file_get_contents|file_put_contents|fputs|fwrite|fread|fopen|tmpfile|tempnam|symlink|unlink|rmdir|mkdir|chmod|chown|chgrp|get_current_user|getmyuid|getmypid|getcwd|getenv|phpinfo|phpversion|php_uname|ini_get\w*|ini_set|ini_alter|ini_restore|dl|var_dump|var_export|debug_zval_dump|print_r|imap_open|ldap_connect|mysql_query|mysqli_query|pg_query|sqlite_query|odbc_exec|runkit_\w+|eval_\w+)(?:\s|/\*.*?\*/|//[^\n]*\n|#[^\n]*\n|["'])*\("#
        ),
        // an expression called as a function: `('system')('id')`, `($f)('id')`, `[system][0]('id')`
        r!(
            "php.dynamic_call",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r#"[)\]}]\s*(?:(?:/\*.*?\*/|//[^\n]*\n|#[^\n]*\n)\s*)*\(\s*(?:['"][\w\s./-]{1,60}['"]|\$\w+)\s*\)|\(\s*\[?\s*['"]?(?:system|exec|passthru|shell_exec|assert|eval|popen|proc_open|pcntl_exec)['"]?\s*\]?\s*\)\s*(?:\[\s*\d+\s*\]\s*)?\(|[{(]\s*\[\s*['"]?(?:system|exec|passthru|shell_exec|assert)['"]?\s*\]\s*\[\s*\d+\s*\]"#
        ),
        r!(
            "php.variable_call",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r#"\$[a-z_]\w*\s*(?:(?:/\*.*?\*/|//[^\n]*\n|#[^\n]*\n)\s*|\[[^\]]{0,40}\]\s*|\{[^}]{0,40}\}\s*)+\(\s*(?:['"$)]|\w+\s*\))"#
        ),
        r!("php.open_tag", CodeInjection, 1, C, Text, ALL, r"<\?\s*$|\[\s*/\s*php\s*\]"),
        r!("php.serialized_object", CodeInjection, 1, C, Text, ALL, r#"\b[oca]:\d+:"[\w\\]+":\d+:\{"#),
        r!(
            "php.ini_directive",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r"\b(?:allow_url_(?:include|fopen)|auto_(?:prepend|append)_file|disable_(?:functions|classes)|open_basedir|safe_mode\w*|suhosin\.\w+|mbstring\.\w+|pcre\.\w+|zend\.\w+|opcache\.\w+|session\.(?:save_path|save_handler|serialize_handler|use_trans_sid|auto_start|upload_progress\.\w+)|display_errors|display_startup_errors|log_errors|error_log|error_reporting|expose_php|file_uploads|short_open_tag|include_path|register_globals|magic_quotes_\w+|enable_dl|user_ini\.\w+|phar\.\w+|assert\.\w+|max_execution_time|memory_limit|post_max_size|upload_max_filesize|upload_tmp_dir|sendmail_path|cgi\.\w+|fastcgi\.\w+|mail\.\w+|output_handler|html_errors|variables_order|extension_dir|xdebug\.\w+)\s*="
        ),
        r!(
            "php.upload_name",
            CodeInjection,
            1,
            C,
            Text,
            FILE,
            r"\.\s*(?:php\d*|phtml|pht|phar|phps|pgif|shtml|htaccess|user\.ini|asp|aspx|jsp|jspx|cgi)\b|^\s*\.(?:htaccess|user\.ini)\b|^sess_[\w,-]{16,}"
        ),
        r!(
            "java.class",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r"\bjava(?:x)?\s*\.\s*(?:lang|io|net|nio|util|rmi|beans|script|management|naming|security|sql|awt|swing|xml)\s*\.\s*[a-z]\w*|\bjava\.[\w.]*?(?:runtime|processbuilder)|\b(?:runtime|processbuilder)\b.{0,60}?\b(?:exec|start|getruntime|command|java|closure|transformer|factory)\b"
        ),
        r!(
            "java.gadget",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r"(?:invoker|instantiate|chained|constant|clone|closure|map|switch|predicate)transformer|forclosure|whileclosure|instantiatefactory|prototype(?:clone|serialization)factory|templatesimpl|xmldecoder|jndimanager|jdbcrowsetimpl|bsh\.interpreter|groovy\.(?:util|lang)|clojure\.(?:core|main|lang)|org\.apache\.(?:commons\b|xalan|xbean|tomcat|catalina|struts2?|log4j|naming|myfaces|shiro|bcel|wicket|velocity)|com\.sun\.(?:org\.apache|jndi|rowset|corba)|org\.omg\.(?:corba|cosnaming|portableserver|iop)\b|com\.opensymphony\.(?:xwork2|webwork)\b|javax\.(?:naming|script|management)\b|java\.(?:rmi|beans)\b|sun\.(?:misc|reflect|rmi)\.|ysoserial|org\.springframework\.(?:beans|context|core\.io|expression|jndi)|com\.alibaba\.fastjson|com\.mchange\.v2|org\.hibernate|\bobject(?:input|output)stream\b|\bgetruntime\s*\(|\bclass\.forname\s*\(|\.getclass\s*\(\s*\)\s*\.|\.newinstance\s*\(|\bprocessbuilder\b|\.getmethod\s*\(|\.invoke\s*\(.{0,40}\bnull\b|@type\s*['\x22]?\s*:"
        ),
        r!(
            "java.serialized",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r"(?-i:rO0AB|KztAAU|Cs7QAF|H4sIAAAAAAAA)|\xac\xed\x00\x05|\baced0005"
        ),
        r!(
            "java.expression_language",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r"%\{\s*[(#@'\x22]|#_memberaccess|@java\.lang|@ognl|#context\s*\[|#(?:request|application|session|attr|parameters)\s*[\[.]|\bognl\.|\bclass\.(?:module\.)?classloader|\bclassloader\.(?:resources|urls|parent)|#\{\s*t\s*\(|\bt\s*\(\s*java\.|\bnew\s+java\.|\.getruntime\b"
        ),
        r!(
            "node.injection",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r#"\brequire\s*\(\s*['"`](?:child_process|fs|net|http|os|vm|process|module)['"`]\s*\)|\bchild_process\b|\bprocess\s*\.\s*(?:env|mainmodule|binding|exit|kill|dlopen|stdout|stdin|cwd|argv|execpath|getuid)\b|\bprocess\s*\[\s*['"`]|\bmainmodule\b|\bglobal\s*\.\s*process\b|\bconstructor\s*\.\s*constructor\b|\bconsole\s*(?:\.\s*|\[\s*['"`])(?:log|info|warn|error|dir|trace|debug)\b|\b(?:spawn|execsync|spawnsync|execfile|execfilesync)\s*\(|\bthis\.constructor\b|\bvm\.run\w*\s*\(|\bnew\s+function\s*\(|\bfunction\s*\(\s*\)\s*\{.{0,100}\breturn\b|\breturn\s+process\b"#
        ),
        r!(
            "node.prototype_pollution",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r"__proto__|\bconstructor\s*(?:\.|\[\s*['\x22]?)\s*prototype\b"
        ),
        r!(
            "node.dos_loop",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r"\bwhile\s*\(+\s*(?:true|1|!0|!!|!\[\])\b|\bwhile\s*\(+\s*!!|\bfor\s*\(\s*;\s*;\s*\)|\bwhile\s*\(+\s*(?:this|!\s*(?:null|undefined|nan|false|-?0|``|''|\x22\x22|\{\s*\}))\s*\)"
        ),
        r!(
            "perl.injection",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r"@\{\s*\[|\bqx\s*[{(/|]|\bopen\s*\(\s*\w+\s*,\s*['\x22]\s*\|"
        ),
        r!(
            "ruby.injection",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r"\bkernel\s*\.\s*(?:exec|system|spawn|open|eval|`)|\bprocess\s*\.\s*spawn\b|\bio\s*\.\s*popen\b|\bopen3\s*\.|%x\{|\bsyscall\s*\(|\binstance_eval\b|\bclass_eval\b|\bmodule_eval\b|\.send\s*\(\s*:|\.constantize\b|\bobjectspace\b|\bmarshal\.load\b|\berb\.new\b"
        ),
        r!(
            "python.injection",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r#"__import__\s*\(|\bos\s*\.\s*(?:system|popen|exec\w*|spawn\w*)\s*\(|\bsubprocess\s*\.\s*\w+|\bpickle\.loads?\b|\bcommands\.getoutput\b|\bexec\s*\(\s*['"]|\bcompile\s*\(.{0,60}exec"#
        ),
        r!(
            "ssi.directive",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r"<!--\s*#\s*(?:exec|include|echo|config|set|printenv|fsize|flastmod|if|elif)\b"
        ),
        // ---------------------------------------------------------------- session fixation
        r!(
            "session.fixation",
            SessionFixation,
            1,
            C,
            Text,
            ALL,
            r"\.cookie\b.{0,100}?\b(?:expires|path|domain|max-age)\s*=|<\s*meta\b[^>]*\bhttp-equiv\s*=\s*['\x22]?set-cookie|\bset-cookie\s*:"
        ),
        r!(
            "session.id_in_args",
            SessionFixation,
            1,
            C,
            Text,
            NAMES,
            r"^(?:jsessionid|phpsessid|aspsessionid\w*|asp\.net_sessionid|cfid|cftoken|jsessionidsso)$"
        ),
        // ---------------------------------------------------------------- LDAP (higher paranoia)
        r!(
            "ldapi.filter",
            Ldapi,
            2,
            C,
            Text,
            ARGS | HEADER,
            r"\(\s*[|&!]\s*\(\s*[\w-]+\s*[~<>]?=|\*\s*\)\s*\(\s*[|&]?\s*\(?\s*[\w-]+\s*=|\)\s*\(\s*[\w-]+\s*=\s*\*|\*\)\)?\x00|\)\)\s*\(\s*[|&]"
        ),
        r!(
            "ldapi.filter",
            Ldapi,
            1,
            C,
            Text,
            ARGS | HEADER,
            r"\*\)\s*\(\s*[|&]\s*\(\s*(?:objectclass|uid|cn|mail|userpassword|sn|ou|samaccountname)\s*="
        ),
        // ---------------------------------------------------------------- added: SQL structure
        r!(
            "sqli.quote_keyword",
            Sqli,
            1,
            C,
            Sql,
            ALL,
            r#"['"`]\s*\)*\s*(?:select\b|insert\b|update\b|delete\b|drop\b|alter\b|create\b|exec(?:ute)?\b|waitfor\b|declare\b|having\b|procedure\b|xor\b|div\b|rlike\b|regexp\b|sounds\s+like\b|(?:order|group)\s+by\b|limit\s+\d|into\s+(?:out|dump)file\b|is\s+(?:not\s+)?null\b|is\s+not\b|(?:or|and)\s*[?!(@]|(?:or|and)\s+(?:not\s+)?(?:\d|true\b|false\b|null\b|exists\b|[a-z_]\w*\s*(?:[=<>!(]|--|#|;|not\b|like\b|is\b)))"#
        ),
        r!(
            "sqli.quote_boolean",
            Sqli,
            1,
            E,
            Sql,
            ALL,
            r#"['"`]\s*\)*\s*(?:or|and|like|is|not|in)\b|\b(?:or|and|xor|like|rlike|regexp|not|is)\s+['"`]|['"`]\s*;\s*[a-z]|['"`]\s*(?:<=>|!=|<>|>=|<=|[<>=])\s*['"`]?\s*(?:#|--|$)"#
        ),
        r!("sqli.as_from", Sqli, 1, C, Sql, ALL, r#"(?:[)'"`]|\b\d+)\s*as\s+['"`\[]?[\w]+['"`\]]?\s+from\b"#),
        r!(
            "sqli.time_based",
            Sqli,
            1,
            C,
            Sql,
            ALL,
            r"\bwaitfor\s+(?:delay|time)\b|\bsleep\s*\(\s*\d+\s*\)|\bbenchmark\s*\(\s*\d+\s*,"
        ),
        r!("sqli.mysql_comment", Sqli, 1, C, Text, ALL, r"/\*[!+]\s*\d*\s*[a-z]{3,}"),
        r!("sqli.json_operator", Sqli, 1, C, Sql, ALL, r#"['"]\s*(?:->>?|#>>?|\?[|&]|@>|<@)\s*['"]"#),
        r!(
            "sqli.statement_keyword",
            Sqli,
            1,
            C,
            Sql,
            ALL,
            r"\bexecute\s+immediate\b|\bprocedure\s+analyse\b|\blo_(?:get|import|export|open|creat|create|unlink|from_bytea|put)\s*\(|\b(?:msdasql|sqloledb|northwind)\b|\bexcept\s+values\s*\(|\bvalues\s*\(\s*['\d].{0,80}\)\s*(?:;|--|#|$)|\bin\s*\(\s*select\b|\bcase\s+when\b.{1,80}?\bthen\b|\bwhen\s+\d+\s+then\b|\d\s*<=>\s*\d|,\s*\d+\s*=\s*\d+\s*$"
        ),
        r!(
            "sqli.sql_function",
            Sqli,
            1,
            C,
            Text,
            ALL,
            r"\b(?:benchmark|sleep|sysdate|strcmp|unhex|group_concat|concat_ws|concat|substring|substr|load_file|updatexml|extractvalue|make_set|elt|find_in_set|lpad|rpad|soundex|crc32|uncompress|from_base64|to_base64|json_extract|json_valid|pg_\w+|utl_\w+|dbms_\w+|xmltype|nvl2?|ifnull|iif|isnull|coalesce|ascii|ord|mid|current_user|session_user|system_user|rand|now|pi|abs|char_length|bit_length|octet_length|conv|oct|bin|nullif|greatest|least|rlike|regexp_\w+|sys_\w+|user_name|db_name|schema_name|object_id|object_name|col_name|has_dbaccess|is_srvrolemember|convert|cast|decode|encode|aes_\w+|des_\w+|exp|floor|ceil|ceiling|round|truncate|last_insert_id|row_count|found_rows|connection_id|uuid|uuid_short|inet_aton|inet_ntoa)\("
        ),
        r!(
            "sqli.chained_condition",
            Sqli,
            1,
            C,
            Sql,
            ALL,
            r#"(?:^|[\s=(/])(?:and|or|xor|&&|\|\|)\s*[(!]*\s*[\w.@`]+\s*(?:==?|<=>|!=|<>|<=|>=|[<>])\s*(?:['"(!]|\d|$)|(?:^|[\s=(])(?:&&|\|\|)\s*\(\s*\w+\s*=|(?:^|[;\s])set\s+@\w+\s*="#
        ),
        r!("sqli.in_list", Sqli, 1, E, Sql, ALL, r"\bin\s*\(\s*\d+\s*(?:,\s*\d+\s*)+\)"),
        // conditionals and statement shapes that only SQL has
        r!(
            "sqli.conditional",
            Sqli,
            1,
            C,
            Sql,
            ALL,
            r#"\)\s*(?:like|rlike|regexp)\s*\(|\b(?:if|iif)\s*\(\s*[\w'"@.]+\s*(?:=|<|>|!=|<>|\blike\b)|\bselect\s*\(\s*(?:user|database|version|schema|current_user|system_user|@@)\b|\bselect\s+(?:char|chr|nchar|concat|concat_ws|ascii|cast|convert|substring|substr|hex|unhex|load_file|case)\s*\(|\bselect\s*\(\s*case\b|\bexec(?:ute)?\s+master\.|^\s*declare\s+@\w+|['"]\s+\?\|?\s+(?:['"]|array\s*\[)"#
        ),
        // a probe that ends in an opened call of a SQL function (`database(`, `hex (`)
        r!(
            "sqli.function_probe",
            Sqli,
            1,
            C,
            Sql,
            ALL,
            r"^\s*(?:select\s*\(?\s*)?(?:database|schema|user|version|hex|unhex|md5|sha1|sha2|uncompress|compress|char|chr|concat|concat_ws|substring|substr|ascii|sleep|benchmark|current_user|system_user|session_user|load_file|extractvalue|updatexml|db_name|user_name|is_srvrolemember|utl_inaddr\.\w+)\s*\\?\(\s*$"
        ),
        // the floating-point value that hangs PHP and Java number parsers
        r!("sqli.magic_number", Sqli, 1, C, Text, VALUES | NAMES, r"\b2\.225073858507201[0-9]*e-0*308\b"),
        // ---------------------------------------------------------------- added: shell
        r!(
            "cmdi.glob_path",
            Cmdi,
            1,
            C,
            Text,
            ALL ^ UA,
            r"(?:^|[\s;|&=<>(`'\x22])/(?:[a-z]{0,4}(?:[?*]|\[[!^]?[a-z0-9/-]+\])[a-z?*\[\]!^/-]{0,12}/[\w.?*\[\]/!^-]*|\[[!^]?[a-z/]+(?:-[a-z])?\][a-z]{1,6}(?:/|$)|(?:bin|etc|usr|dev|tmp|proc|sbin|var|opt|home|root)/[\w./-]*?(?:[?*]|\[[!^]?[a-z0-9/-]+\])[\w.?*\[\]!^-]*)"
        ),
        r!("cmdi.brace_expansion", Cmdi, 1, C, Shell, ALL ^ UA, r"\{,?[a-z/][\w/.-]{0,20},[\w/.$-][\w/.$ -]{0,40}\}"),
        r!("cmdi.shellshock", Cmdi, 1, C, Text, ALL, r"\(\s*\)\s*\{"),
        r!(
            "cmdi.windows",
            Cmdi,
            1,
            C,
            Shell,
            ALL ^ UA,
            r"\bif\s+(?:/i\s+)?(?:not\s+)?.{0,40}?\s(?:equ|neq|lss|leq|gtr|geq|==)\s|\biwmi\b|\bwmic\b.{0,40}\b(?:process|call|create)\b|\bwin32_process\b"
        ),
        r!("cmdi.substitution", Cmdi, 1, C, Text, ALL ^ UA, r"[a-z]``(?:\s|$)"),
        // ---------------------------------------------------------------- added: XSS
        r!(
            "xss.obfuscated_tag",
            Xss,
            1,
            C,
            Text,
            ALL,
            r"<\s*[a-z](?:\s+[a-z]){3,}\b|<\s*[a-z]+:[a-z]+\b[^>]*\b(?:src|href|on\w+)\s*="
        ),
        r!(
            "xss.js_sink",
            Xss,
            1,
            C,
            Text,
            ALL,
            r#"\b(?:window|self|top|parent|globalthis|frames)\s*\[\s*['"`](?:alert|prompt|confirm|eval|document|location|execscript|settimeout|fetch)['"`]\s*\]|\bbtoa\s*\(|\bdocument\s*(?:/\*[^*]*\*/\s*|\)\s*)*(?:\.|\[\s*['"`])\s*(?:/\*[^*]*\*/\s*)*(?:cookie|write|domain|location|createelement|body|forms|execcommand)\b|\bset(?:timeout|interval)\s*\(\s*[a-z_$]|\.\s*(?:/\*.*?\*/\s*)*(?:call|apply|bind)\s*(?:/\*.*?\*/\s*)*`|\burl\s*\(\s*['"]?\s*(?:javascript|vbscript)\b|\bdata\s*:[^,]{0,60},\s*<"#
        ),
        r!("xss.html_tag", Xss, 1, E, Text, ALL, r"<\s*(?:noscript|dialog|xmp|plaintext|noembed|listing|comment)\b"),
        // ---------------------------------------------------------------- added: RFI / SSRF
        r!(
            "rfi.ssrf_internal",
            Rfi,
            1,
            C,
            Text,
            VALUES,
            r"(?:^|[/@.\s])(?:localtest\.me|lvh\.me|[\w.-]*\.nip\.io|[\w.-]*\.sslip\.io|host\.docker\.internal|gateway\.docker\.internal|host\.containers\.internal)\b"
        ),
        r!(
            "rfi.ssrf_internal",
            Rfi,
            1,
            C,
            Text,
            VALUES,
            r"^\s*(?:localhost(?:\.localdomain)?|localhost[46]|ip6-localhost|ip6-loopback|ipv6-localhost|ipv6-loopback)[:/]|^\s*(?:localhost\.localdomain|localhost[46]|ip6-localhost|ip6-loopback|ipv6-localhost|ipv6-loopback)$|^\s*(?:[a-z][\w+.-]*:)?/{0,2}(?:[^/@?#\s]*@)?(?:\d{8,10}|0x[0-9a-f]{8,}|0[0-7]{10,11}|(?:0[0-7]{1,3}|0x[0-9a-f]{1,2}|\d{1,3})(?:\.(?:0[0-7]{1,3}|0x[0-9a-f]{1,2}|\d{1,3})){0,2}\.(?:0[0-7]{4,}|0x[0-9a-f]{3,}|\d{4,10})|(?:0[0-7]{1,3}\.){3}0[0-7]{1,3}|(?:0x[0-9a-f]{1,2}\.){3}0x[0-9a-f]{1,2})(?:[:/?#]|$)|^\s*(?:local_file|jar):"
        ),
        r!("rfi.ssrf_confusion", Rfi, 1, C, Text, VALUES, r"^\s*(?:https?|ftp)://[^/?#@]*[\s&#\\][^/?]*@"),
        r!("rfi.ssrf_scheme", Rfi, 1, C, Text, VALUES, r"^\s*data:(?:text|application)/"),
        // ---------------------------------------------------------------- added: code injection
        r!(
            "php.function_call",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r#"\b(?:sodium|zend|posix|pcntl|proc|stream_socket|socket|curl|openssl|dns_get|imap|ldap|ftp|ssh2|apache|call_user|func_get|create_function|highlight|show_source|php_|phpinfo|ini_|mb_ereg|preg_replace_callback|fsockopen)\w*\s*\(|\b(?:exec|system|passthru|shell_exec|eval|assert|popen)\s*/\*.*?\*/\s*\(|['"](?:system|exec|passthru|shell_exec|assert|eval|popen)['"]\s*\(|\[\s*['"]?(?:system|exec|passthru|shell_exec|assert)['"]?\s*\]\s*(?:\[\s*\d+\s*\]\s*)?\(|\(\s*(?:/\*.*?\*/\s*)*(?:system|exec|passthru|shell_exec|assert|eval)\s*(?:/\*.*?\*/\s*)*\)\s*\(|\[\s*php\s*\]"#
        ),
        r!(
            "php.variable_call",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r#"\$\{\s*\$\w+\s*\}|\$\{\s*['"]\w+['"]\s*\}|\$[a-z_]\w*\s*(?:\[[^\]]{0,40}\]\s*)+(?:/\*.*?\*/\s*)*\(\s*(?:['"$)]|\w+\s*\))"#
        ),
        r!(
            "php.ini_directive",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r"\b(?:session\.\w+|unserialize_\w+|zend\.\w+|apc\.\w+)\s*="
        ),
        r!("php.upload_name", CodeInjection, 1, C, Text, FILE, r"(?:^|/)sess_[\w,-]{8,}"),
        r!(
            "node.injection",
            CodeInjection,
            1,
            C,
            Text,
            ALL,
            r"_\$\$nd_func\$\$_|\bwhile\s*\(+\s*(?:[+-]?\s*infinity|-?\d+)\s*\)"
        ),
        r!(
            "ssti.statement",
            Ssti,
            1,
            C,
            Text,
            ALL,
            r"\{%-?\s*(?:if|for|set|import|include|extends|block|macro|raw|print|with|call|filter|debug)\b.{0,200}?%\}"
        ),
        // ---------------------------------------------------------------- added: CRLF / LDAP
        r!("crlf.arg_crlf", Crlf, 1, C, Text, NAMES, r"[\r\n]"),
        r!(
            "crlf.request_smuggling",
            Crlf,
            1,
            C,
            Text,
            ALL,
            r"(?:get|post|put|delete|head|options|connect|patch|trace)\s+/\S*\s+http/\d(?:\.\d)?\s*[\r\n]"
        ),
        r!(
            "ldapi.filter",
            Ldapi,
            1,
            C,
            Text,
            ARGS | HEADER,
            r"\)\s*[|&!]?\s*\(\s*(?:[|&!]\s*(?:\)|\(|$)|[\w-]+\s*[~<>]?=)|\)\s*\(\s*[|&!]\s*\)?\s*$"
        ),
        // ---------------------------------------------------------------- added: session fixation
        r!(
            "session.id_in_args",
            SessionFixation,
            1,
            C,
            Text,
            NAMES,
            r"^(?:[a-z]+session|[\w.-]*session[-_.](?:id|token)|sid|session_id|sessid|session|[\w-]*\.sid|play_session|laravel_session|ci_session|rack\.session|_session_id|koa\.sess)$"
        ),
        // ---------------------------------------------------------------- protocol
        // default install paths of legacy servers that scanners fingerprint (IIS samples and
        // admin, FrontPage, ColdFusion admin, Domino databases, WebSphere/WebLogic examples)
        r!(
            "protocol.legacy_probe",
            Protocol,
            1,
            C,
            Path,
            PATH,
            r"/(?:_vti_(?:pvt|bin|cnf|log|txt|script|inf)|vti_txt|_cti_pvt|_private|iisadmpwd|iissamples|iisadmin|iishelp|msadc|scripts/tools|printers|cfide/(?:administrator|adminapi|componentutils|scripts)|websphere(?:samples)?|examplesWebApp|webapp/examples|samples/(?:isapi|sampsite|htmlsamp|dbsamp|gbook|search)|servlet/(?:snoop|hello\w*|simpleservlet|sessionservlet))(?:/|$)|\.(?:htr|ida|idq|htw|printer|stm|btr)$|/(?:names|admin4?|catalog|log|bookmarks|mtatbls|dspug|statrep|webadmin|domcfg)\.nsf$"
        ),
        // extensions sites also serve on purpose (a sample log, an .ini download): a sign, not a
        // block on their own
        r!(
            "protocol.restricted_file",
            Protocol,
            1,
            E,
            Path,
            PATH | FILE,
            r"\.(?:log|ini|conf|cnf|config|inc|dist|copy|tmp|temp|sav|save)$"
        ),
        r!(
            "protocol.restricted_file",
            Protocol,
            1,
            C,
            Path,
            PATH | FILE,
            r"\.(?:bak|backup|bkp|old|orig|original|swp|swo|sql|mdb|passwd|htpasswd|htaccess|pem|key|env|kdbx|ovpn|db|rdb|sqlite|sqlite3|dbf|frm|myd|myi|ibd|pfx|p12|jks|keystore)~?$|~$|/\.(?:git|svn|hg|bzr|cvs|env|aws|ssh|docker|idea|vscode|htaccess|htpasswd|ds_store|bash_history|npmrc|netrc|pgpass|user\.ini|gitconfig)(?:/|$|\.)|/(?:web|app)\.config$|/wp-config\.php|/(?:cvs|\.svn)/entries$|/(?:phpinfo|info|test|php_info)\.php$|\.(?:sql|db|sqlite3?|bak|dump|mdb)\.(?:zip|gz|tgz|tar|bz2|xz|7z|rar|zst)$|/etc/(?:passwd|shadow|group|gshadow|sudoers|master\.passwd)$|/proc/(?:self|\d+|interrupts|version|cpuinfo|meminfo|mounts|net)(?:/|$)|\.(?:php|jsp|asp|aspx|py|rb|pl|cgi|html?)\.(?:[a-z]{1,6})$"
        ),
    ]
}

/// Scanner and attack-tool User-Agent tokens (lower-case, our own list).
pub(crate) const SCANNER_TOKENS: &[&str] = &[
    "sqlmap",
    "nikto",
    "nmap",
    "masscan",
    "zgrab",
    "nuclei",
    "dirbuster",
    "gobuster",
    "wpscan",
    "acunetix",
    "nessus",
    "openvas",
    "w3af",
    "havij",
    "jaeles",
    "ffuf",
    "feroxbuster",
    "wfuzz",
    "dirb/",
    "dirb ",
    "arachni",
    "skipfish",
    "netsparker",
    "appscan",
    "paros",
    "webinspect",
    "whatweb",
    "joomscan",
    "droopescan",
    "commix",
    "xsser",
    "bbqsql",
    "fimap",
    "grabber",
    "metasploit",
    "morfeus",
    "zmeu",
    "hydra",
    "medusa",
    "zmap",
    "interactsh",
    "wapiti",
    "webshag",
    "uniscan",
    "pangolin",
    "sqlninja",
    "absinthe",
    "bsqlbf",
    "nsauditor",
    "sysscan",
    "brutus",
    "webvulnscan",
    "httprint",
    "nasl",
    "jorgee",
    "muieblackcat",
    "floodgate",
    "crimscanner",
    "mysqloit",
    "sqlpowerinjector",
    "teh forest lobster",
    "blackwidow",
    "burpcollaborator",
    "qualys",
    "openwebspider",
    "wpsec",
    "vega/",
    "sitelock",
    "x-scan",
    "pmafind",
    "dotdotpwn",
    "cgichk",
    "webtrends security",
    "zap/",
    "owasp zap",
    "go-http-client/1.1 nuclei",
    "struts-pwn",
    "log4j-scan",
    "xray",
    "dalfox",
    "katana",
    "httpx - open-source",
    "naabu",
    "amass",
    "subfinder",
    "masscan-ng",
    "evilscanner",
    "shellshock",
    "() {",
    "nmap scripting engine",
    "black widow",
    "webreaper",
    "n-stealth",
    "cisco-torch",
    "bfac",
    "datacha0s",
    "the_grinder",
    "sqlsus",
];

#[cfg(test)]
mod tests {
    /// Fuzzing (LeakSanitizer) found every `Inspector::new` leaking the generated command
    /// patterns; they are now built once per process, so two builds share the same text.
    #[test]
    fn generated_patterns_are_built_once() {
        let a = super::rule_defs();
        let b = super::rule_defs();
        let shared = a.iter().zip(&b).filter(|(x, y)| std::ptr::eq(x.pattern, y.pattern)).count();
        assert_eq!(shared, a.len(), "every pattern, generated ones included, is the same allocation");
    }
}
