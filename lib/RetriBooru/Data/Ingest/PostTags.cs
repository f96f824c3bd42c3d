using System.Text;
using System.Text.Json;

namespace RetriBooru.Data.Ingest;

/// <summary>
/// The tags of one post, by Danbooru category, plus the post's own id and md5 when the metadata has them.
/// <see cref="DroppedTags"/> counts the tags past <see cref="PostTagParser.MaxTagsPerImage"/> that were left out.
/// </summary>
public sealed record PostTags(
    IReadOnlyList<string> General, IReadOnlyList<string> Characters, IReadOnlyList<string> Artists,
    IReadOnlyList<string> Copyrights, string? PostId = null, string? Md5 = null, string? File = null, int DroppedTags = 0);

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
/// Bounds, so that one crafted file cannot grow the tag vocabulary (and the text encoder) without limit: a per-image tag
/// file or post JSON larger than <see cref="MaxTagFileBytes"/> is rejected unread, a tag longer than
/// <see cref="MaxTagLength"/> is malformed, and a post keeps at most <see cref="MaxTagsPerImage"/> tags (identity tags
/// first); the rest are counted (<see cref="PostTags.DroppedTags"/>) and the build reports them as a <c>too_many_tags</c> warning.
/// </summary>
public static class PostTagParser
{
    /// <summary>Longest tag, in characters (Danbooru's longest ordinary tags are under 100).</summary>
    public const int MaxTagLength = 200;
    /// <summary>Most tags kept per image, all categories together (a heavily tagged Danbooru post has about 100).</summary>
    public const int MaxTagsPerImage = 512;
    /// <summary>Largest per-image tag file (.txt) or post metadata (.json), in bytes: 256 KiB, far above any real post.</summary>
    public const long MaxTagFileBytes = 256 * 1024;
    static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static PostTags ParseSidecarFile(string path)
    {
        var bytes = ReadBounded(path, "tag file");
        if (bytes.Length == 0) throw new TagFormatException("empty_tags", "empty tag file (0 bytes)");
        string text;
        try { text = StrictUtf8.GetString(bytes); }
        catch (DecoderFallbackException) { throw new TagFormatException("malformed_tags", "malformed tag file: not UTF-8 text"); }
        return ParseSidecarText(text);
    }

    /// <summary>Parses a per-image post metadata file (<c>X.json</c>); JsonException when it is not JSON.</summary>
    public static PostTags ParsePostFile(string path)
    {
        using var document = JsonDocument.Parse(ReadBounded(path, "post metadata file"));
        return ParsePost(document.RootElement);
    }

    static byte[] ReadBounded(string path, string what)
    {
        long length = new FileInfo(path).Length;
        if (length > MaxTagFileBytes)
            throw new TagFormatException("tag_file_too_large", $"{what} is {length:N0} bytes, over the limit of {MaxTagFileBytes:N0} bytes for one image's tags; not read");
        return File.ReadAllBytes(path);
    }

    /// <summary>Tags of one post by category; <see cref="ToPostTags"/> keeps <see cref="MaxTagsPerImage"/> of them and counts the rest.</summary>
    sealed class TagLists
    {
        public readonly List<string> General = [], Characters = [], Artists = [], Copyrights = [];

        public bool Empty => General.Count + Characters.Count + Artists.Count + Copyrights.Count == 0;

        /// <summary>
        /// Distinct tags, at most <see cref="MaxTagsPerImage"/> in all: character, copyright and artist tags first (they are few,
        /// and a flood of general tags must not cost the image its identity), then general tags in file order.
        /// </summary>
        public PostTags ToPostTags(string? id = null, string? md5 = null, string? file = null)
        {
            int room = MaxTagsPerImage, dropped = 0;
            List<string> Keep(List<string> tags)
            {
                var distinct = Distinct(tags);
                var kept = distinct.Take(room).ToList();
                room -= kept.Count;
                dropped += distinct.Count - kept.Count;
                return kept;
            }
            var (characters, copyrights, artists, general) = (Keep(Characters), Keep(Copyrights), Keep(Artists), Keep(General));
            return new(general, characters, artists, copyrights, id, md5, file, dropped);
        }
    }

    public static PostTags ParseSidecarText(string text)
    {
        var tags = new TagLists();
        var (general, characters, artists, copyrights) = (tags.General, tags.Characters, tags.Artists, tags.Copyrights);
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
        if (tags.Empty) throw new TagFormatException("empty_tags", "empty tag file (no tags)");
        return tags.ToPostTags();
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

        var lists = new TagLists();
        if (post.TryGetProperty("tags", out var tagArray) && tagArray.ValueKind == JsonValueKind.Array)
        {
            foreach (var tag in tagArray.EnumerateArray())
            {
                if (tag.ValueKind != JsonValueKind.Object || !tag.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String)
                    throw new TagFormatException("malformed_metadata", "a 'tags' entry is not an object with a string 'name'");
                string category = tag.TryGetProperty("category", out var c) ? (c.ValueKind == JsonValueKind.String ? c.GetString()! : c.GetRawText()) : "0";
                var list = category switch { "1" => lists.Artists, "3" => lists.Copyrights, "4" => lists.Characters, "5" => null, _ => lists.General };
                list?.Add(Normalise(name.GetString()!));
            }
            return lists.ToPostTags(id, md5, file);
        }

        bool any = false;
        foreach (var (name, list) in new[] { ("tag_string_general", lists.General), ("tag_string_character", lists.Characters),
                     ("tag_string_artist", lists.Artists), ("tag_string_copyright", lists.Copyrights) })
        {
            if (!post.TryGetProperty(name, out var value)) continue;
            if (value.ValueKind != JsonValueKind.String) throw new TagFormatException("malformed_metadata", $"'{name}' is a JSON {value.ValueKind}, not a string");
            any = true;
            list.AddRange(value.GetString()!.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(Normalise));
        }
        var result = lists.ToPostTags(id, md5, file);
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
