using System.Text;
using System.Text.Json;

namespace RetriBooru.Data.Ingest;

/// <summary>The tags of one post, by Danbooru category, plus the post's own id and md5 when the metadata has them.</summary>
public sealed record PostTags(
    IReadOnlyList<string> General, IReadOnlyList<string> Characters, IReadOnlyList<string> Artists,
    IReadOnlyList<string> Copyrights, string? PostId = null, string? Md5 = null, string? File = null);

/// <summary>A tag source that cannot be used, with a stable code and a message naming the problem.</summary>
public sealed class TagFormatException(string code, string message) : Exception(message)
{
    public string Code { get; } = code;
}

/// <summary>
/// Parses the two tag formats of Danbooru-style folders. A sidecar <c>.txt</c> holds comma-separated tags (newlines
/// also separate); <c>character:</c>, <c>artist:</c>, <c>copyright:</c>, <c>meta:</c> and <c>general:</c> prefixes
/// give the category (no prefix = general). Post metadata JSON holds <c>tag_string_general</c>,
/// <c>tag_string_character</c>, <c>tag_string_artist</c> (space-separated), or Danbooru2019's <c>tags</c> array of
/// <c>{name, category}</c>.
/// </summary>
public static class PostTagParser
{
    const int MaxTagLength = 200;
    static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static PostTags ParseSidecarFile(string path)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length == 0) throw new TagFormatException("empty_tags", "empty tag file (0 bytes)");
        string text;
        try { text = StrictUtf8.GetString(bytes); }
        catch (DecoderFallbackException) { throw new TagFormatException("malformed_tags", "malformed tag file: not UTF-8 text"); }
        return ParseSidecarText(text);
    }

    public static PostTags ParseSidecarText(string text)
    {
        var general = new List<string>(); var characters = new List<string>(); var artists = new List<string>(); var copyrights = new List<string>();
        foreach (var raw in text.TrimStart('\uFEFF').Split([',', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            string tag = raw;
            var bucket = general;
            int colon = tag.IndexOf(':');
            if (colon > 0)
            {
                var prefix = tag[..colon].Trim().ToLowerInvariant();
                var rest = tag[(colon + 1)..].Trim();
                List<string>? chosen = prefix switch
                {
                    "character" => characters, "artist" => artists, "copyright" => copyrights, "general" => general,
                    "meta" or "rating" => null,
                    // A colon inside an ordinary tag (e.g. ":d", "re:zero") is part of the tag.
                    _ => general,
                };
                if (prefix is "meta" or "rating") continue;
                if (prefix is "character" or "artist" or "copyright" or "general") { bucket = chosen!; tag = rest; }
            }
            bucket.Add(Normalise(tag));
        }
        if (general.Count + characters.Count + artists.Count + copyrights.Count == 0)
            throw new TagFormatException("empty_tags", "empty tag file (no tags)");
        return new PostTags(Distinct(general), Distinct(characters), Distinct(artists), Distinct(copyrights));
    }

    /// <summary>Parses one Danbooru post object.</summary>
    public static PostTags ParsePost(JsonElement post)
    {
        if (post.ValueKind != JsonValueKind.Object) throw new TagFormatException("malformed_metadata", $"post metadata is a JSON {post.ValueKind}, not an object");
        string? id = post.TryGetProperty("id", out var idElement) ? idElement.ValueKind switch
        {
            JsonValueKind.Number => idElement.GetRawText(),
            JsonValueKind.String => idElement.GetString(),
            _ => null,
        } : null;
        string? md5 = post.TryGetProperty("md5", out var md5Element) && md5Element.ValueKind == JsonValueKind.String ? md5Element.GetString() : null;
        string? file = null;
        foreach (var name in new[] { "file", "file_path", "path" })
            if (post.TryGetProperty(name, out var f) && f.ValueKind == JsonValueKind.String) { file = f.GetString(); break; }

        if (post.TryGetProperty("tags", out var tagArray) && tagArray.ValueKind == JsonValueKind.Array)
        {
            var general = new List<string>(); var characters = new List<string>(); var artists = new List<string>(); var copyrights = new List<string>();
            foreach (var tag in tagArray.EnumerateArray())
            {
                if (tag.ValueKind != JsonValueKind.Object || !tag.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String)
                    throw new TagFormatException("malformed_metadata", "a 'tags' entry is not an object with a string 'name'");
                string category = tag.TryGetProperty("category", out var c) ? (c.ValueKind == JsonValueKind.String ? c.GetString()! : c.GetRawText()) : "0";
                var list = category switch { "1" => artists, "3" => copyrights, "4" => characters, "5" => null, _ => general };
                list?.Add(Normalise(name.GetString()!));
            }
            return new PostTags(Distinct(general), Distinct(characters), Distinct(artists), Distinct(copyrights), id, md5, file);
        }

        bool any = false;
        List<string> Field(string name)
        {
            if (!post.TryGetProperty(name, out var value)) return [];
            if (value.ValueKind != JsonValueKind.String) throw new TagFormatException("malformed_metadata", $"'{name}' is a JSON {value.ValueKind}, not a string");
            any = true;
            return value.GetString()!.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(Normalise).ToList();
        }
        var result = new PostTags(Distinct(Field("tag_string_general")), Distinct(Field("tag_string_character")),
            Distinct(Field("tag_string_artist")), Distinct(Field("tag_string_copyright")), id, md5, file);
        if (!any) throw new TagFormatException("malformed_metadata", "post metadata has none of tag_string_general, tag_string_character, tag_string_artist, tags");
        return result;
    }

    /// <summary>Danbooru spelling: lower case, spaces as underscores; control characters and overlong tags are malformed.</summary>
    static string Normalise(string tag)
    {
        var t = tag.Trim().ToLowerInvariant().Replace(' ', '_');
        if (t.Length == 0) throw new TagFormatException("malformed_tags", "empty tag after a category prefix");
        if (t.Length > MaxTagLength) throw new TagFormatException("malformed_tags", $"tag longer than {MaxTagLength} characters ('{t[..40]}...')");
        if (t.Any(char.IsControl)) throw new TagFormatException("malformed_tags", "tag contains control characters (binary data in a tag file?)");
        return t;
    }

    static List<string> Distinct(List<string> tags) => tags.Distinct(StringComparer.Ordinal).ToList();
}
