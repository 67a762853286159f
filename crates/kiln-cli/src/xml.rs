//! Reading the EC2 API's XML answers with a real parser (roxmltree): element names are matched
//! by their local name, so the EC2 namespace needs no mention, and entities are decoded.

pub use roxmltree::{Document, Node};

/// Parses an answer.
pub fn parse(text: &str) -> anyhow::Result<Document<'_>> {
    Document::parse(text).map_err(|e| anyhow::anyhow!("the server's answer is not XML: {e}"))
}

fn is(node: &Node<'_, '_>, name: &str) -> bool {
    node.is_element() && node.tag_name().name() == name
}

/// The first element named `name` below `node`, its direct children first.
pub fn find<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| is(c, name)).or_else(|| node.descendants().skip(1).find(|c| is(c, name)))
}

/// The text of the first element named `name` below `node`.
pub fn text(node: Node<'_, '_>, name: &str) -> Option<String> {
    find(node, name).map(|n| n.text().unwrap_or("").to_string())
}

/// The `<item>` elements of the list element named `list` below `node`.
pub fn items<'a, 'i>(node: Node<'a, 'i>, list: &str) -> Vec<Node<'a, 'i>> {
    find(node, list).map(|l| l.children().filter(|c| is(c, "item")).collect()).unwrap_or_default()
}

/// The value of tag `key` in the `tagSet` of `node`.
pub fn tag(node: Node<'_, '_>, key: &str) -> Option<String> {
    items(node, "tagSet").into_iter().find(|t| text(*t, "key").as_deref() == Some(key)).and_then(|t| text(t, "value"))
}

/// The text of the first element named `name` in a whole answer; `None` when there is none or
/// the answer is not XML.
pub fn text_of(doc: &str, name: &str) -> Option<String> {
    text(parse(doc).ok()?.root(), name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_elements_lists_and_tags() {
        let doc = r#"<R xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><imageId>ami-1</imageId>
            <Message>a &amp; b</Message><tagSet><item><key>Name</key><value>web</value></item></tagSet>
            <set><item><id>1</id><set><item><id>x</id></item></set></item><item><id>2</id></item></set></R>"#;
        assert_eq!(text_of(doc, "imageId").as_deref(), Some("ami-1"));
        assert_eq!(text_of(doc, "Message").as_deref(), Some("a & b"));
        assert_eq!(text_of(doc, "nope"), None);
        assert_eq!(text_of("<not xml", "imageId"), None);
        let parsed = parse(doc).unwrap();
        let root = parsed.root_element();
        assert_eq!(tag(root, "Name").as_deref(), Some("web"));
        let ids: Vec<_> = items(root, "set").into_iter().map(|i| text(i, "id").unwrap()).collect();
        assert_eq!(ids, ["1", "2"], "nested lists stay inside their item");
    }
}
