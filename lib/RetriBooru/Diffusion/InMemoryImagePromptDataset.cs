using static TorchSharp.torch;

namespace RetriBooru.Diffusion;

/// <summary>Examples held in memory (packed floats): for benchmarks, notebooks and tests that need no files.</summary>
public sealed class InMemoryImagePromptDataset : IImagePromptDataset
{
    readonly List<(string Id, float[] Image, string Prompt)> items = [];

    public int ImageSize { get; }
    public int Count => items.Count;
    public IEnumerable<string> Prompts => items.Select(i => i.Prompt);

    public InMemoryImagePromptDataset(int imageSize) => ImageSize = imageSize;

    /// <summary>Adds an image [3, S, S] in [-1, 1] with its prompt.</summary>
    public void Add(string id, Tensor image, string prompt)
    {
        if (!image.shape.SequenceEqual(new long[] { 3, ImageSize, ImageSize }))
            throw new ArgumentException($"image '{id}' is [{string.Join(", ", image.shape)}], expected [3, {ImageSize}, {ImageSize}]");
        using var scope = NewDisposeScope(); // keeps the chain's intermediates alive until their native calls return
        var cpu = image.detach().to(CPU).to(float32).contiguous();
        items.Add((id, cpu.data<float>().ToArray(), prompt));
    }

    public ImagePromptExample Get(int index)
    {
        var (id, image, prompt) = items[index];
        return new ImagePromptExample(id, tensor(image, [3, ImageSize, ImageSize]), prompt, null);
    }

    /// <summary>
    /// Seeded stand-in data for benchmarks: each image is a flat colour with a contrasting square, each prompt
    /// a few tags naming the colours; learnable, but no substitute for a real dataset.
    /// </summary>
    public static InMemoryImagePromptDataset Synthetic(int count, int imageSize, long seed)
    {
        string[] colours = ["red", "green", "blue", "yellow", "white", "black"];
        float[][] rgb = [[1, -1, -1], [-1, 1, -1], [-1, -1, 1], [1, 1, -1], [1, 1, 1], [-1, -1, -1]];
        var random = Runtime.Seeding.Stream(seed, "synthetic-benchmark-data");
        var data = new InMemoryImagePromptDataset(imageSize);
        for (int i = 0; i < count; i++)
        {
            using var scope = NewDisposeScope();
            int back = random.Next(colours.Length), front = (back + 1 + random.Next(colours.Length - 1)) % colours.Length;
            int side = imageSize / 4 + random.Next(imageSize / 2), x = random.Next(imageSize - side + 1), y = random.Next(imageSize - side + 1);
            var image = tensor(rgb[back]).view(3, 1, 1).expand(3, imageSize, imageSize).clone();
            image[.., y..(y + side), x..(x + side)] = tensor(rgb[front]).view(3, 1, 1).expand(3, side, side);
            data.Add($"synthetic-{i}", image, $"{colours[back]}_background, {colours[front]}_square");
        }
        return data;
    }
}
