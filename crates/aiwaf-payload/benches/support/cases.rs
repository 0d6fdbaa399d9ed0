//! The requests the criterion bench and the callgrind example (`examples/inspect_count.rs`)
//! inspect: one definition, so their figures compare.

/// A browser's `User-Agent`.
pub const UA: &[u8] =
    b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";

/// A browser's headers (no query, no body: the GET case).
pub fn headers() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("Host", b"shop.example"),
        ("User-Agent", UA),
        ("Accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        ("Cookie", b"JSESSIONID=08C8DCD89400C53A4F6F4C6029663578; _ga=GA1.2.123.456"),
        ("Referer", b"https://shop.example/tienda1/publico/productos.jsp"),
    ]
}

/// The CSIC-like request: its path, query and form body.
pub const CSIC_PATH: &str = "/tienda1/publico/anadir.jsp";
/// See [`CSIC_PATH`].
pub const CSIC_QUERY: &str = "id=2&nombre=Jam%F3n+Ib%E9rico&precio=85&cantidad=18&B1=A%F1adir+al+carrito";
/// See [`CSIC_PATH`].
pub const CSIC_FORM: &[u8] = b"modo=registro&login=natiuk&password=perjura&nombre=Ahmed&apellidos=Moreno+Undurraga&email=lag%40xavipetit.lu&dni=39499084B&direccion=Plza.+Promesas%2C+123%2C+";

/// A listing page's query (the GET-with-query case): the same few arguments on most requests.
pub const GET_QUERY: &str = "page=2&sort=price&q=red+shoes&utm_source=newsletter";

/// A ~1 KiB JSON order.
pub fn json_1k() -> String {
    let mut json = String::from("{\"order\":{\"id\":\"A-1029\",\"items\":[");
    for i in 0..12 {
        json.push_str(&format!(
            "{{\"sku\":\"SKU-{i:04}\",\"name\":\"Blue cotton shirt size {i}\",\"qty\":{i},\"price\":19.99}},"
        ));
    }
    json.push_str(
        "{\"sku\":\"END\"}],\"customer\":{\"email\":\"ana@example.com\",\"note\":\"Leave at the door, thanks!\"}}}",
    );
    json
}
