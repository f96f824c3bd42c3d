using RetriBooru.Data;
using RetriBooru.Imaging;
using RetriBooru.Runtime;
using static TorchSharp.torch;

namespace RetriBooru.Diffusion;

/// <summary>One training example: image [3, H, W] in [-1, 1], its tag prompt, optional figure mask [1, H, W] in [0, 1].</summary>
public sealed record ImagePromptExample(string Id, Tensor Image, string Prompt, Tensor? Mask);

/// <summary>What a text-to-image trainer reads. Implementations return fresh tensors the caller disposes (or lets a dispose scope take).</summary>
public interface IImagePromptDataset
{
    int Count { get; }
    int ImageSize { get; }
    ImagePromptExample Get(int index);
    IEnumerable<string> Prompts { get; }
}

/// <summary>A file that could not be used, and why.</summary>
public sealed record SkippedFile(string Path, string Reason);

/// <summary>
/// Reads a dataset folder (<see cref="DatasetLayout"/>): records.jsonl, images, optional masks, resized to
/// <see cref="ImageSize"/>. Small images (up to 64 px, the CPU world) are decoded once at construction and kept
/// as packed floats (a 32 px image is 12 KB); larger ones are checked at construction (image header) and
/// decoded on each <see cref="Get"/>. An unreadable image or mask is reported in <see cref="Skipped"/>,
/// counted and left out.
/// </summary>
public sealed class DatasetFolderSource : IImagePromptDataset
{
    sealed record Item(string Id, string ImagePath, string? MaskPath, string Prompt, float[]? Image, float[]? Mask);

    readonly List<Item> items = [];

    public string Folder { get; }
    public int ImageSize { get; }
    public bool Preloaded { get; }
    public int Count => items.Count;
    public IReadOnlyList<SkippedFile> Skipped { get; }
    public IEnumerable<string> Prompts => items.Select(i => i.Prompt);

    /// <param name="include">Which records to use (null = all), e.g. leaving the unseen characters out of base training.</param>
    public DatasetFolderSource(string folder, int imageSize, bool withMasks = true, bool? preload = null, IProgress<(int Done, int Total)>? progress = null,
        Func<ImageRecord, bool>? include = null)
    {
        TorchRuntime.EnsureLoaded();
        Folder = folder;
        ImageSize = imageSize;
        Preloaded = preload ?? imageSize <= 64;
        var records = DatasetLayout.ReadRecords(folder);
        if (include is not null) records = records.Where(include).ToList();
        var skipped = new List<SkippedFile>();
        int done = 0;
        foreach (var record in records)
        {
            string current = record.Image;
            try
            {
                var imagePath = ManifestReader.Resolve(folder, record.Image);
                var maskPath = withMasks && record.Mask is not null ? ManifestReader.Resolve(folder, record.Mask) : null;
                current = imagePath;
                if (Preloaded)
                {
                    using var scope = NewDisposeScope();
                    var image = ImageTensor.Load(imagePath, imageSize).data<float>().ToArray();
                    current = maskPath ?? imagePath;
                    var mask = maskPath is null ? null : ImageTensor.LoadMask(maskPath, imageSize).data<float>().ToArray();
                    items.Add(new Item(record.Id, imagePath, maskPath, record.Prompts, image, mask));
                }
                else
                {
                    CheckDecodable(imagePath);
                    current = maskPath ?? imagePath;
                    if (maskPath is not null) CheckDecodable(maskPath);
                    items.Add(new Item(record.Id, imagePath, maskPath, record.Prompts, null, null));
                }
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
            {
                skipped.Add(new SkippedFile(current, e.Message));
            }
            progress?.Report((++done, records.Count));
        }
        Skipped = skipped;
        if (items.Count == 0)
            throw new InvalidDataException($"{folder}: no usable images ({skipped.Count} skipped{(skipped.Count > 0 ? "; first: " + skipped[0].Reason : "")})");
    }

    /// <summary>The decoder's header checks (format, pixel limit) now, so a bad file is skipped here, not met mid-training.</summary>
    static void CheckDecodable(string path)
    {
        if (ImageProbe.CheckHeader(path) is { } problem) throw new InvalidDataException($"{path}: {problem.Message}");
    }

    public ImagePromptExample Get(int index)
    {
        var item = items[index];
        if (item.Image is not null)
            return new ImagePromptExample(item.Id, tensor(item.Image, [3, ImageSize, ImageSize]), item.Prompt,
                item.Mask is null ? null : tensor(item.Mask, [1, ImageSize, ImageSize]));
        return new ImagePromptExample(item.Id, ImageTensor.Load(item.ImagePath, ImageSize), item.Prompt,
            item.MaskPath is null ? null : ImageTensor.LoadMask(item.MaskPath, ImageSize));
    }
}

/// <summary>
/// The order examples are visited in: each epoch is a permutation drawn from <c>Seeding.Stream(seed, "data-order/EPOCH")</c>,
/// and step s takes positions [s B, (s + 1) B) of the concatenated epochs, so any step's batch is computable
/// directly (resume needs no saved RNG state).
/// </summary>
public sealed class DataOrder(long seed, int count)
{
    int cachedEpoch = -1;
    int[] permutation = [];

    public int[] Batch(long step, int batchSize)
    {
        var result = new int[batchSize];
        for (int i = 0; i < batchSize; i++)
        {
            long position = step * batchSize + i;
            int epoch = (int)(position / count);
            result[i] = Permutation(epoch)[(int)(position % count)];
        }
        return result;
    }

    int[] Permutation(int epoch)
    {
        if (epoch == cachedEpoch) return permutation;
        var random = Seeding.Stream(seed, $"data-order/{epoch}");
        var p = Enumerable.Range(0, count).ToArray();
        for (int i = p.Length - 1; i > 0; i--)
        {
            int j = random.Next(i + 1);
            (p[i], p[j]) = (p[j], p[i]);
        }
        cachedEpoch = epoch;
        permutation = p;
        return p;
    }
}
